#!/usr/bin/env bash
# A day in the bank, as far as CBS goes today, against the cluster `make run` started: a customer
# registered and KYC-verified, a savings account opened and funded in cash, a lien placed and
# lifted, two business days closed with their books read and the interest they accrued, the days
# closed on to the month's end and its statement read (JSON, CSV and PDF), and the account closed
# with its interest settled and its money paid out. Needs curl and python3; set CBS_URL (default http://127.0.0.1:8080) and the admin's
# password if it is not the development default.
set -euo pipefail
URL=${CBS_URL:-http://127.0.0.1:8080}
CBS=${CBS:-.venv/bin/cbs}
json() { python3 -c "import sys, json; print(json.load(sys.stdin)$1)"; }
uuid() { python3 -c "import uuid; print(uuid.uuid4())"; }
TOKEN=$(curl -sf -d grant_type=password -d username=admin -d password="${CBS_ADMIN_PASSWORD:-cbs-dev-admin-password}" \
        "$URL/v1/auth/token" | json '["access_token"]')
call() {  # METHOD PATH [BODY]
  curl -sf -X "$1" -H "Authorization: Bearer $TOKEN" -H "Idempotency-Key: $(uuid)" -H "Content-Type: application/json" \
       ${3:+-d "$3"} "$URL$2"
}

echo "== a customer, registered and KYC-verified"
CUSTOMER=$(uuid)
call POST /v1/customers "{\"customer_id\": \"$CUSTOMER\", \"customer_type\": \"individual\", \"first_name\": \"Meera\",
  \"last_name\": \"Iyer\", \"date_of_birth\": \"1988-04-12\", \"email\": \"meera-${CUSTOMER:0:8}@example.com\",
  \"phone\": \"+919811111111\", \"national_id\": \"NID-${CUSTOMER:0:8}\",
  \"addresses\": [{\"street\": \"12 Residency Road\", \"city\": \"Bengaluru\", \"country\": \"IN\"}]}" >/dev/null
for DOC in national_id utility_bill photo; do
  ID=$(uuid)
  call POST "/v1/customers/$CUSTOMER/kyc/documents" "{\"document_id\": \"$ID\", \"document_type\": \"$DOC\",
    \"number\": \"$DOC-1\", \"issuer\": \"Issuer\", \"issue_date\": \"$(date +%F)\"}" >/dev/null
  call POST "/v1/customers/$CUSTOMER/kyc/verify" "{\"document_id\": \"$ID\"}" >/dev/null
done

ACCOUNT=$(uuid)
echo "== a savings account $ACCOUNT (100.00 minimum balance), once the account worker has learnt the KYC"
until call POST /v1/accounts "{\"account_id\": \"$ACCOUNT\", \"customer_id\": \"$CUSTOMER\", \"product_code\": \"savings\"}" \
      >/dev/null 2>&1; do sleep 0.3; done

echo "== 2,500.00 deposited in cash at the branch (once payments know the account)"
until call POST /v1/payments "{\"payment_id\": \"$(uuid)\", \"kind\": \"cash_deposit\", \"channel\": \"branch\",
      \"payee\": {\"account_id\": \"$ACCOUNT\"}, \"amount\": 250000, \"currency\": \"INR\"}" >/dev/null 2>&1; do sleep 0.3; done
call GET "/v1/accounts/$ACCOUNT/balance" | python3 -c 'import sys, json; b = json.load(sys.stdin); print("balance", b["balance"], "available", b["available"])'

echo "== a lien of 500.00 (a court order), then lifted"
LIEN=$(uuid)
call POST "/v1/accounts/$ACCOUNT/holds" "{\"hold_id\": \"$LIEN\", \"kind\": \"lien\", \"amount\": 50000, \"reason\": \"court order\"}" >/dev/null
call GET "/v1/accounts/$ACCOUNT/balance" | python3 -c 'import sys, json; b = json.load(sys.stdin); print("with the lien: available", b["available"])'
call POST "/v1/accounts/$ACCOUNT/holds/$LIEN/release" '{"reason": "order lifted"}' >/dev/null

echo "== two business days closed, and the books as the first closed"
FIRST=$(call GET /v1/business-day | json '["business_date"]')
"$CBS" day close --wait >/dev/null
"$CBS" day close --wait >/dev/null
call GET /v1/business-day | python3 -c 'import sys, json; d = json.load(sys.stdin); print("open:", d["business_date"], "last closed:", d["last_closed"])'
call GET "/v1/ledger/trial-balance?business_date=$FIRST" | python3 -c '
import sys, json
books = json.load(sys.stdin)
for row in books["rows"]:
    if row["debits_posted"] or row["credits_posted"]:
        print("  %5s %-20s %-10s balance %d" % (row["gl_code"] or "-", row["code"], row["gl_class"], row["balance"]))
print("  balanced:", all(t["balanced"] for t in books["totals"]), "| balance sheet:", books["balance_sheet"][0])'

echo "== savings interest (3.50% a year) accrued on each day-end balance, exact, to the last close"
call GET "/v1/accounts/$ACCOUNT/interest" | python3 -c '
import sys, json
for p in json.load(sys.stdin)["periods"]:
    print("  period to %s: accrued %s to %s, %s minor units (%s)" % (p["period_end"], p["accrued_from"],
          p["accrued_through"], p["accrued"], p["status"]))'
echo "== business days closed to the month's end; at its close the month's statement is drawn up"
MONTH=${FIRST:0:7}
while [ "$(call GET /v1/business-day | json '["business_date"]' | cut -c1-7)" = "$MONTH" ]; do
  "$CBS" day close --wait >/dev/null
done
MONTH_END=$(python3 -c "import calendar; y, m = map(int, '$MONTH'.split('-')); print('%s-%02d' % ('$MONTH', calendar.monthrange(y, m)[1]))")
call GET "/v1/accounts/$ACCOUNT/statements/$MONTH_END" | python3 -c '
import sys, json
s = json.load(sys.stdin)
print("statement of %s for account %s: opening %d + credits %d - debits %d = closing %d" % (s["month_end"],
      s["account_number"], s["opening"], s["credits"], s["debits"], s["closing"]))
for x in s["lines"]:
    print("  %s  %-24s %-26s %-16s %7s %7s %7d" % (x["business_date"], x["narration"], x["reference"] or "", x["counterparty"],
          x["debit"] or "", x["credit"] or "", x["balance"]))'
call GET "/v1/accounts/$ACCOUNT/statements/$MONTH_END?format=csv" | head -3
mkdir -p var
call GET "/v1/accounts/$ACCOUNT/statements/$MONTH_END?format=pdf" > "var/statement-$MONTH_END.pdf"
echo "PDF: var/statement-$MONTH_END.pdf, $(wc -c < "var/statement-$MONTH_END.pdf") bytes"

echo "== the customer leaves: the interest accrued settled, the whole balance paid out in cash, the account closed"
call POST "/v1/accounts/$ACCOUNT/close" '{"reason": "customer leaves", "payout_in_cash": true}' | json '["status"]'
SETTLED=$(call GET "/v1/accounts/$ACCOUNT/interest" | python3 -c '
import sys, json; print(sum(p["amount"] for p in json.load(sys.stdin)["periods"] if p["status"] == "posted"))')
PAYOUT_ID=$(python3 -c "import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, 'cbs.ledger.closure.$ACCOUNT'))")
echo "interest paid $SETTLED, paid out $(call GET "/v1/ledger/transfers/$PAYOUT_ID" | json '["amount"]')"
call GET "/v1/accounts/$ACCOUNT/balance" | python3 -c 'import sys, json; b = json.load(sys.stdin); print("balance", b["balance"], "closed", b["closed"])'
