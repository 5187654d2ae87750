#!/bin/sh
# meshrl mesh defender: state 6, 200 qps, spike x2 for 5 s (best_uniform)
# Apply this folder first: kubectl apply -f .
set -e
fortio load -qps 200 -t 10s -c 64 -json segment_1.json http://frontend:8080/
fortio load -qps 400 -t 5s -c 64 -json segment_2.json http://frontend:8080/
fortio load -qps 200 -t 30s -c 64 -json segment_3.json http://frontend:8080/
