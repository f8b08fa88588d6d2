"""The lab in a browser: researches, live progress, approvals, runs and reports, over the Lab API."""
