"""`python -m netc ...`: the same command line as `netc ...`."""
from netc.cli import run

if __name__ == "__main__":
    run()
