#!/usr/bin/env python3
"""A stand-in agent for examples/agent-review.yaml: reads one request from stdin, answers on
stdout. A real one passes the prompt, context and schema to a model and prints its reply."""

import json
import sys

request = json.loads(sys.stdin.readline())
context = request["context"] or {}
if "reviews" in context:  # the summary
    verdicts = [r["verdict"] for r in context["reviews"]]
    print(f"{verdicts.count('approve')} approved, {verdicts.count('changes')} need changes")
else:  # one file's review
    text = context.get("text", "")
    notes = [] if text.lstrip().startswith("#") else ["start the file with a comment"]
    verdict = "changes" if notes else "approve"
    print(json.dumps({"verdict": verdict, "notes": notes}))
