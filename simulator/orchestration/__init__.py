"""Running a scenario: phases on a fleet (runner), one run in one process (session), and the distributed
run: agents with a mutual-TLS control API, the controller that arms them for one T0, the limit search."""
