#!/usr/bin/env bash
# Table 5 spread over a Slurm cluster: the simulators once, an array job of shards, then the
# report, chained by dependencies. Run from the repository root on a login node, with the
# meshrl binary built (`cargo build --release`) on a file system every node shares:
#
#   bash deploy/slurm/table5.sh
#
# Each array task runs the cells whose index in table order is its task id modulo the
# number of tasks; claims on the shared file system keep two tasks off one cell. Change
# SHARDS to spread wider.
set -euo pipefail
SHARDS=8
OUT="results/table5"
MESHRL="$PWD/target/release/meshrl"
mkdir -p logs
prepare=$(sbatch --parsable --job-name=meshrl-prepare --cpus-per-task=2 --output=logs/prepare_%j.out \
    --wrap="$MESHRL prepare experiments/table5.toml --set 'out_dir=\"$OUT\"'")
shards=$(sbatch --parsable --dependency=afterok:$prepare --export=ALL,SHARDS=$SHARDS,OUT=$OUT,MESHRL=$MESHRL \
    --array=0-$((SHARDS - 1)) deploy/slurm/table5_shard.sbatch)
sbatch --dependency=afterok:$shards --job-name=meshrl-report --output=logs/report_%j.out \
    --wrap="$MESHRL report experiments/table5.toml --set 'out_dir=\"$OUT\"'"
