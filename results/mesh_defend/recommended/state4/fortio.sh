#!/bin/sh
# meshrl mesh defender: state 4, 200 qps, spike x2 for 5 s, productcatalogservice/1 failing 50 % (best_uniform)
# Apply this folder first: kubectl apply -f .
# The state's sick replica is not made by these commands: productcatalogservice/1 answering 50 % of requests 500.
set -e
fortio load -qps 200 -t 10s -c 64 -json segment_1.json http://frontend:8080/
fortio load -qps 400 -t 5s -c 64 -json segment_2.json http://frontend:8080/
fortio load -qps 200 -t 30s -c 64 -json segment_3.json http://frontend:8080/
