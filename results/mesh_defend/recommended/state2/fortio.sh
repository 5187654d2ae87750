#!/bin/sh
# meshrl mesh defender: state 2, 200 qps, no spike, adservice/0 slowed x5 (best_uniform)
# Apply this folder first: kubectl apply -f .
# The state's sick replica is not made by these commands: adservice/0 slowed x5.
set -e
fortio load -qps 200 -t 10s -c 64 -json segment_1.json http://frontend:8080/
fortio load -qps 200 -t 30s -c 64 -json segment_2.json http://frontend:8080/
