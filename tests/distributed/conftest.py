# worker.py is a script that torchrun starts, not a module of tests (--doctest-modules would
# import it, and it reads its arguments from the command line).
collect_ignore = ["worker.py"]
