#!/usr/bin/env bash
# Regenerate the example sessions pasted into docs/clients-and-cli.md,
# docs/tokens.md, docs/refresh-tokens.md and docs/migrating-off.md.
#
#   bash docs/_scripts/cli-session.sh /tmp/ropc-session > /tmp/session.txt
#
# It copies examples/ into a fresh directory, runs `flask ropc ...` against
# examples/minimal_app.py (its SQLite file is instance/ropc.sqlite3 there),
# serves the app with `flask run` on port 5077 and calls it with curl. Needs
# curl and .venv.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
WORK=${1:?usage: cli-session.sh EMPTY_DIR}
mkdir -p "$WORK" && cd "$WORK" || exit 1
rm -rf examples instance && cp -r "$ROOT/examples" .
export FLASK_APP=examples/minimal_app.py PATH="$ROOT/.venv/bin:$PATH"
PORT=5077 URL=http://127.0.0.1:5077

quiet() { grep -v '^ROPC_ISSUER is not set'; }
# run 'COMMAND' shows the command as written, then its real output.
run() { echo "\$ $1"; eval "$1" 2>&1 | quiet; echo; }
json() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
section() { echo; echo "######## $1"; echo; }

section "init"
echo '$ flask ropc init-db'; flask ropc init-db 2>&1; echo
run 'flask ropc init-db'
run 'flask ropc --help'
run 'flask ropc list-clients'

section "create"
out=$(flask ropc create-client "Mobile app" --scope api 2>/dev/null)
echo '$ flask ropc create-client "Mobile app" --scope api'; echo "$out"; echo
CLIENT_ID=$(echo "$out" | sed -n 's/^client_id: *//p'); CLIENT_SECRET=$(echo "$out" | sed -n 's/^client_secret: *//p')
out=$(flask ropc create-client "Sync service" --scope "api profile" --offline-access --json 2>/dev/null)
echo '$ flask ropc create-client "Sync service" --scope "api profile" --offline-access --json'
echo "$out"; echo
SYNC_ID=$(echo "$out" | json client_id); SYNC_SECRET=$(echo "$out" | json client_secret)
out=$(flask ropc create-client "CLI tool" --public --scope api 2>/dev/null)
echo '$ flask ropc create-client "CLI tool" --public --scope api'; echo "$out"; echo
CLI_ID=$(echo "$out" | sed -n 's/^client_id: *//p')
run 'printf %s "imported-secret-from-identityserver" | flask ropc create-client "Legacy desktop" --scope api --secret-stdin'
echo "# CLIENT_ID=$CLIENT_ID CLIENT_SECRET=$CLIENT_SECRET SYNC_ID=$SYNC_ID CLI_ID=$CLI_ID"

flask run --port $PORT >server.log 2>&1 &
SERVER=$!
for _ in $(seq 50); do curl -s -o /dev/null $URL/.well-known/oauth-authorization-server && break; sleep 0.2; done

section "tokens"
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" -d scope=api $URL/oauth/token'
run 'curl -s -d client_id=$CLI_ID -d grant_type=password -d username=bob --data-urlencode "password=hunter2-but-longer" $URL/oauth/token'
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann -d password=wrong $URL/oauth/token'
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=nobody -d password=wrong $URL/oauth/token'
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann -d password=x -d scope=admin $URL/oauth/token'

section "list"
run 'flask ropc list-clients'
run 'flask ropc show-client $CLIENT_ID'

section "update"
run 'flask ropc update-client $CLIENT_ID --scope "api profile" --access-token-lifetime 900 --token-format reference'
run 'flask ropc update-client $CLIENT_ID --disable --json'
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" $URL/oauth/token'
run 'flask ropc update-client $CLIENT_ID --enable --default-access-token-lifetime --token-format default --scope api'
run 'flask ropc update-client $CLIENT_ID --sunset 2027-06-30'

section "sunset"
run 'curl -s -i -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" $URL/oauth/token'
run 'flask ropc list-clients'

section "rotate"
run 'flask ropc rotate-secret $CLIENT_ID --json'
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" $URL/oauth/token'
CLIENT_SECRET=$(flask ropc rotate-secret $CLIENT_ID --json 2>/dev/null | json client_secret)

section "refresh"
out=$(curl -s -u "$SYNC_ID:$SYNC_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" -d "scope=api offline_access" $URL/oauth/token)
echo '$ curl -s -u "$SYNC_ID:$SYNC_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" -d "scope=api offline_access" $URL/oauth/token'
echo "$out"; echo
RT1=$(echo "$out" | json refresh_token)
out=$(curl -s -u "$SYNC_ID:$SYNC_SECRET" -d grant_type=refresh_token -d refresh_token=$RT1 $URL/oauth/token)
echo '$ curl -s -u "$SYNC_ID:$SYNC_SECRET" -d grant_type=refresh_token -d refresh_token=$RT1 $URL/oauth/token'
echo "$out"; echo
RT2=$(echo "$out" | json refresh_token)
run 'curl -s -u "$SYNC_ID:$SYNC_SECRET" -d grant_type=refresh_token -d refresh_token=$RT1 $URL/oauth/token'
run 'curl -s -u "$SYNC_ID:$SYNC_SECRET" -d grant_type=refresh_token -d refresh_token=$RT2 $URL/oauth/token'

section "revoke"
curl -s -o /dev/null -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=ann --data-urlencode "password=correct horse battery staple" $URL/oauth/token
run 'flask ropc revoke --subject 1'
run 'flask ropc revoke --client $SYNC_ID'
run 'flask ropc cleanup'

section "throttle"
run 'for i in 1 2 3 4 5; do curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=bob -d password=wrong $URL/oauth/token; echo; done'
run 'curl -s -i -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=bob --data-urlencode "password=hunter2-but-longer" $URL/oauth/token'
run 'flask ropc unlock bob'
run 'curl -s -u "$CLIENT_ID:$CLIENT_SECRET" -d grant_type=password -d username=bob --data-urlencode "password=hunter2-but-longer" $URL/oauth/token'

section "keys"
run 'flask ropc keys list'
run 'flask ropc keys generate --alg ES256'
run 'flask ropc keys list'
OLD_KID=$(flask ropc keys list --json 2>/dev/null | python3 -c "import json,sys; print([k['kid'] for k in json.load(sys.stdin)['keys'] if k['status']=='active'][0])")
run 'flask ropc keys rotate'
run 'flask ropc keys list'
run 'flask ropc keys retire $OLD_KID'
run 'flask ropc keys list --json'
run 'curl -s $URL/oauth/jwks'

section "delete"
run 'echo n | flask ropc delete-client $CLI_ID'
run 'flask ropc delete-client $CLI_ID --yes'
run 'flask ropc show-client $CLI_ID; echo "exit status $?"'
run 'flask ropc update-client $CLIENT_ID --sunset tomorrow; echo "exit status $?"'

kill $SERVER
