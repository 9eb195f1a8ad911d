-- api_keys: per-org API keys (SPEC §8: a key belongs to one org or to the operator). Only a SHA-256 of the key's
-- secret part is stored; keys are 256-bit random, so a plain hash is enough (no password stretching needed).
-- A revocation is a newer row for the same key_id; readers take the newest row (FINAL / argMax).
CREATE TABLE IF NOT EXISTS api_keys
(
    key_id      String,
    org_id      String,
    secret_hash String,
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    revoked     Bool DEFAULT false
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY key_id;
