"""Prints, for every flow defined in the given Python files, the flow name and the parameter
schema Prefect itself generates (`parameter_schema(flow)`, dumped as `prefect deploy` sends it).

Run with the test harness' Prefect: .venv/prefect-<version>/bin/python this_file.py FILE...
Output: {"<file>": {"<function>": {"flow_name": ..., "schema": {...}}}} as JSON on stdout.
"""

import importlib.util
import json
import sys
import warnings

from prefect import Flow
from prefect.utilities.callables import parameter_schema

warnings.simplefilter("ignore")
result = {}
for path in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location(f"fixture_{len(result)}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    flows = {}
    for name, value in vars(module).items():
        if isinstance(value, Flow) and value.fn.__module__ == module.__name__:
            schema = parameter_schema(value).model_dump(mode="json", exclude_unset=True)
            flows[value.fn.__name__] = {"flow_name": value.name, "schema": schema}
    result[path] = flows
json.dump(result, sys.stdout, indent=1, sort_keys=True, default=str)
