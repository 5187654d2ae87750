#!/bin/sh
# meshrl mesh defender: state 1, 400 qps, no spike, redis-cart/0 slowed x5 (best_uniform)
# Apply this folder first: kubectl apply -f .
# The state's sick replica is not made by these commands: redis-cart/0 slowed x5.
set -e
fortio load -qps 400 -t 10s -c 64 -json segment_1.json http://frontend:8080/
fortio load -qps 400 -t 30s -c 64 -json segment_2.json http://frontend:8080/
