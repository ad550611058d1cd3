"""Reports: the results bundle of a run (reports/<run-id>/, JSON, summary, HTML with plots), the fault
matrix of several runs, and two runs side by side."""
