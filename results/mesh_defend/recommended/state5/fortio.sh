#!/bin/sh
# meshrl mesh defender: state 5, 600 qps, spike x2 for 5 s, checkoutservice/0 failing 20 % (best_uniform)
# Apply this folder first: kubectl apply -f .
# The state's sick replica is not made by these commands: checkoutservice/0 answering 20 % of requests 500.
set -e
fortio load -qps 600 -t 10s -c 64 -json segment_1.json http://frontend:8080/
fortio load -qps 1200 -t 5s -c 64 -json segment_2.json http://frontend:8080/
fortio load -qps 600 -t 30s -c 64 -json segment_3.json http://frontend:8080/
