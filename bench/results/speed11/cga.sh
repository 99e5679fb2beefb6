#!/bin/bash
# usage: cga.sh TREE C ABLATION TAG  -> prints instr/cancel of plugin side
TREE=$1; C=$2; AB=$3; TAG=$4
for N in 100 400; do
  (cd $TREE && PYTHONPATH=$TREE valgrind --tool=callgrind --callgrind-out-file=/tmp/speed11/cga.$TAG.$N.out /work/main/.venv/bin/python /tmp/speed11/drive.py --sides ${SIDE:-plugin} -c $C -n $N --warmup 50 --ablate "$AB" > /tmp/speed11/cga.$TAG.$N.log 2>&1) &
done
wait
a=$(grep "^summary" /tmp/speed11/cga.$TAG.100.out | awk '{print $2}'); b=$(grep "^summary" /tmp/speed11/cga.$TAG.400.out | awk '{print $2}')
echo "$TAG c=$C ablate=$AB: $(( (b - a) / 300 )) instr/cancel" | tee -a /tmp/speed11/results.txt
