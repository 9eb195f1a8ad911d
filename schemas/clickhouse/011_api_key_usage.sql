-- api_key_usage: when each API key was last used (SPEC §8 `GET …/keys` shows `last_used_at`). Every API instance
-- writes the keys it authenticated every few seconds; the newest row per key wins (ReplacingMergeTree on
-- last_used_at; readers take max). Keys themselves — role, scope, expiry, the hash of the secret, revocation — are
-- records on the control plane (usage.control.v1), not rows here; api_keys keeps the keys made before roles.
CREATE TABLE IF NOT EXISTS api_key_usage
(
    key_id        String,
    org_id        String,
    last_used_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(last_used_at)
ORDER BY (org_id, key_id);
