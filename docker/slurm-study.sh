#!/bin/bash
# Slurm job running a pdeflow study; resubmitting the same script resumes it (docs/cluster.md).
#SBATCH --job-name=pdeflow-study
#SBATCH --nodes=2
#SBATCH --ntasks-per-node=32
#SBATCH --time=04:00:00
#SBATCH --output=%x-%j.out
set -euo pipefail
SPEC=${SPEC:-$HOME/pdeflow/studies/quickstart.toml}
STUDY=${STUDY:-$SCRATCH/pdeflow/$(basename "$SPEC" .toml)}
RESUME=""
[ -f "$STUDY/study.sqlite" ] && RESUME="--resume"
# with the Apptainer image: srun apptainer exec pdeflow.sif pdeflow study ...
srun -n "$SLURM_NTASKS" pdeflow study "$SPEC" --out "$STUDY" --ranks-per-run 1 $RESUME
