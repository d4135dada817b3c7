"""Prints the automations `prefect deploy` makes from deployment triggers, with Prefect's own
code: `_initialize_deployment_triggers` (default names, validation), `set_deployment_id`, and
`as_automation()` dumped as its client POSTs it (`model_dump(mode="json")`).

Run with the test harness' Prefect: .venv/prefect-<version>/bin/python this_file.py
Input on stdin: {"deployment_id": ..., "cases": [{"deployment": name, "triggers": [...]}]}
Output on stdout: a list, per case, of the automations' JSON bodies, or {"error": message}
when Prefect rejects the triggers.
"""

import json
import sys
import warnings
from uuid import UUID

from prefect.cli.deploy._triggers import _initialize_deployment_triggers

warnings.simplefilter("ignore")
request = json.load(sys.stdin)
deployment_id = UUID(request["deployment_id"])
result = []
for case in request["cases"]:
    try:
        triggers = _initialize_deployment_triggers(case["deployment"], case["triggers"])
    except Exception as error:  # pydantic's ValidationError, as prefect deploy would fail
        result.append({"error": " ".join(str(error).split())})
        continue
    automations = []
    for trigger in triggers:
        trigger.set_deployment_id(deployment_id)
        automations.append(trigger.as_automation().model_dump(mode="json"))
    result.append(automations)
json.dump(result, sys.stdout, indent=1, sort_keys=True)
