"""What prefect-docker and Prefect themselves make of the inputs deploy.ts's native steps read.

Run with the test harness' Prefect and prefect-docker on PYTHONPATH (tests/prefect_docker.ts):

  python this_file.py dockerfile DIR...   for each project DIR, the Dockerfile that
      build_docker_image(dockerfile="auto", persist_dockerfile=True) writes (read back from
      its persisted copy; the build itself fails, DOCKER_HOST points nowhere), or its error
  python this_file.py helpers < cases.json   shlex.split, string.Template.safe_substitute,
      str.splitlines, split_repository_path with the default namespace, the default tag and
      get_prefect_image_name on the given inputs

Output: JSON on stdout.
"""

import json
import os
import shlex
import string
import sys
import warnings
from datetime import datetime
from zoneinfo import ZoneInfo

warnings.simplefilter("ignore")


def dockerfiles(directories):
    from prefect_docker.deployments.steps import build_docker_image

    os.environ["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"
    result = {}
    for directory in directories:
        os.chdir(directory)
        persisted = os.path.join(directory, "..", "persisted.Dockerfile")
        had_dockerfile = os.path.exists("Dockerfile")
        try:
            build_docker_image(
                image_name="reference",
                dockerfile="auto",
                persist_dockerfile=True,
                dockerfile_output_path=persisted,
            )
            error = None
        except Exception as exc:  # the build cannot reach an engine
            error = str(exc)
        text = None
        if os.path.exists(persisted):
            with open(persisted) as f:
                text = f.read()
            os.remove(persisted)
        if not had_dockerfile and os.path.exists("Dockerfile"):
            os.remove("Dockerfile")  # left behind when the engine is unreachable
        result[directory] = {
            "dockerfile": text,
            "error": error if text is None else None,
        }
    return result


def helpers(cases):
    from prefect.utilities.dockerutils import get_prefect_image_name, split_repository_path
    from prefect.utilities.slugify import slugify

    def shlex_or_error(command):
        try:
            return shlex.split(command)
        except ValueError as exc:
            return {"error": str(exc)}

    def qualified(name, namespace):
        found, repository = split_repository_path(name)
        return "/".join(filter(None, [found or namespace, repository]))

    return {
        "shlex": [shlex_or_error(c) for c in cases["shlex"]],
        "substitute": [
            string.Template(text).safe_substitute(values)
            for text, values in cases["substitute"]
        ],
        "splitlines": [text.splitlines() for text in cases["splitlines"]],
        "names": [qualified(name, namespace) for name, namespace in cases["names"]],
        "tags": [
            slugify(datetime.fromisoformat(moment).astimezone(ZoneInfo("UTC")).isoformat())
            for moment in cases["tags"]
        ],
        "images": [
            get_prefect_image_name(prefect, python) for prefect, python in cases["images"]
        ],
    }


if sys.argv[1] == "dockerfile":
    output = dockerfiles(sys.argv[2:])
else:
    output = helpers(json.load(sys.stdin))
json.dump(output, sys.stdout, indent=1)
