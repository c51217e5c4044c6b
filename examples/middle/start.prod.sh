echo "run PROD app"
for f in fileA.txt fileB.txt; do [ -f "$f" ] && echo "$f: $(cat "$f")"; done
echo "NODE_ENV=$NODE_ENV"
