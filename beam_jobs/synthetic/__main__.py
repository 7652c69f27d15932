"""python -m beam_jobs.synthetic: see the package's docstring."""
from beam_jobs.synthetic.job import run

if __name__ == "__main__":
    print(run())
