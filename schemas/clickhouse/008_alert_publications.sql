-- alert_publications: the alerts the notifier has published to spend.alerts.v1. After a batch's alerts are
-- published, their ids are written here, then the consumer offset is committed. When a signal comes back whose
-- alert was created by that very message (the same consumer group, partition and offset), it is either a
-- redelivery after a crash before the commit, or a replay after the group's offsets were reset; the alert is
-- published again only when it has no row here, so a replay publishes nothing twice, and a crash between the
-- publish and this insert repeats at most that batch's alerts (consumers deduplicate on alert_id).
-- ReplacingMergeTree on (org_id, alert_id): a row written twice is one row to every reader (FINAL or DISTINCT).
CREATE TABLE IF NOT EXISTS alert_publications
(
    org_id        String,
    alert_id      String,
    published_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, alert_id);
