//! A partition back from another member of the group: the records it handled, read before
//! this member applies the next one.

use super::*;

/// Brings `partition` up to `until` (exclusive) before the record at `until` is applied: the
/// records in between were handled by another member of the group while it owned the partition
/// (a new owner starts at the committed offset). Starts from that member's newest snapshot when
/// it reflects more than this process holds.
pub fn catch_up(
    settings: &Settings,
    brokers: &str,
    shared: &Shared,
    partition: i32,
    until: i64,
    token: &CancellationToken,
) -> anyhow::Result<()> {
    let from = shared.ledger().next_offset(partition);
    if from >= until {
        return Ok(());
    }
    let mut r = restorer(settings, brokers, shared, token)?;
    let mut parts = r.plan(&BTreeMap::from([(partition, (Some(until), until))]))?;
    r.read(&mut parts)?;
    let Some(mut part) = parts.remove(&partition) else {
        return Ok(());
    };
    // Offsets without a record (transaction markers) up to `until` are handled too.
    part.state.skip_to(until);
    shared.ledger().install([(partition, part.state)]);
    r.report(true);
    info!(
        partition,
        from,
        until,
        changelog_records = r.progress.changelog_records,
        records = r.progress.source_records,
        ms = r.progress.ms,
        "caught up records another member of the group handled"
    );
    Ok(())
}
