#!/bin/sh
# meshrl rule bundle httpbin: kubectl apply -f destination-rule.yaml -f virtual-service.yaml, then run fortio.sh.
set -e
fortio load -c 4 -qps 0 -n 1000 -json load_1.json http://httpbin:8000/get
fortio load -c 4 -qps 0 -n 4000 -json load_2.json http://httpbin:8000/get
fortio load -c 16 -qps 0 -n 1000 -json load_3.json http://httpbin:8000/get
fortio load -c 16 -qps 0 -n 4000 -json load_4.json http://httpbin:8000/get
fortio load -c 64 -qps 0 -n 1000 -json load_5.json http://httpbin:8000/get
fortio load -c 64 -qps 0 -n 4000 -json load_6.json http://httpbin:8000/get
