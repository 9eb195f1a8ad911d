-- webhooks: secrets sealed at rest, and rotation with an overlap (SPEC §11). `secret` now holds the secret sealed
-- with AES-256-GCM under USAGE_SECRET_KEY (`v1.<iv>.<tag>.<ciphertext>`, bound to the org; @usage/webhooks
-- secrets.ts); a value without that prefix was stored before sealing and is re-sealed by the org's next PUT. When a
-- PUT changes the secret with an overlap, the old one (sealed too) stays in previous_secret until previous_until, and
-- each POST meanwhile carries one `v1=` signature per secret.
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS previous_secret String DEFAULT '';
ALTER TABLE webhooks ADD COLUMN IF NOT EXISTS previous_until Nullable(DateTime64(3, 'UTC'));
