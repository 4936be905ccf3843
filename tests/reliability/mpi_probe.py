"""Run ``pdeflow.cli.main(argv)`` under mpirun and record each rank's exit code in $PROBE_DIR/rc.<rank>
(mpirun reports one code for the job; the fault matrix needs every rank's)."""
import os
import sys

from mpi4py import MPI

from pdeflow.cli import main

rank = MPI.COMM_WORLD.rank
code = main(sys.argv[1:])
with open(os.path.join(os.environ["PROBE_DIR"], f"rc.{rank}"), "w") as f:
    f.write(str(code))
sys.exit(code)
