"""A daily report, run in its own container image (built by prefect/report.yaml's build step)."""

from datetime import date, timedelta

from prefect import flow, get_run_logger


@flow(name="report")
def report(day: date | None = None, recipients: list[str] | None = None) -> str:
    """Summarises one day of refined events.

    Args:
        day: The day to report on; yesterday by default.
        recipients: Who receives the report; nobody when empty.
    """
    day = day or date.today() - timedelta(days=1)
    get_run_logger().info("Report for %s to %s", day, recipients or "nobody")
    return f"report for {day}"
