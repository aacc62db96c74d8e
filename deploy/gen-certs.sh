#!/usr/bin/env bash
# Creates a CA and a serving certificate for the flink-ha admission webhook, renders
# the ValidatingWebhookConfiguration with that CA as its caBundle, and optionally
# applies the TLS Secret and the configuration to the current kubectl context.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TEMPLATE="$SCRIPT_DIR/base/validating-webhook.yaml"
PLACEHOLDER=CA_BUNDLE_PLACEHOLDER
SECRET=flink-ha-webhook-tls
WEBHOOK_CONFIG=flink-ha-webhook
DAYS=365

OUT=./deploy-certs
NAMESPACE=flink-ha-system
SERVICE=flink-ha-webhook
APPLY=false
FORCE=false
EXTRA_CAS=()

usage() {
  cat <<EOF
Usage: $(basename "$0") [--out DIR] [--namespace NS] [--service NAME]
                    [--extra-ca FILE]... [--apply [--force]]

Creates, in DIR (default ./deploy-certs):
  ca.key, ca.crt        a new ECDSA P-256 CA, valid $DAYS days
  tls.key, tls.crt      a serving certificate signed by it, valid $DAYS days, for
                        <service>.<namespace>.svc, <service>.<namespace>.svc.cluster.local
                        and <service>.<namespace> (extended key usage serverAuth)
  ca-bundle.pem         ca.crt followed by every --extra-ca file
  validating-webhook.rendered.yaml
                        base/validating-webhook.yaml with caBundle set to the base64 of
                        ca-bundle.pem, and the service name and namespace filled in

Options:
  --out DIR          where to write the files (default ./deploy-certs)
  --namespace NS     namespace of the webhook's Service (default flink-ha-system)
  --service NAME     name of the webhook's Service (default flink-ha-webhook)
  --extra-ca FILE    also trust this CA in the caBundle (repeatable). Use it for a CA
                     rotation: pass the CA in use now (e.g. deploy-certs/ca.crt; it is
                     read before anything is overwritten) so the API server keeps
                     trusting the running pods until they load the new certificate.
  --apply            apply to the current kubectl context: the Secret $SECRET in NS,
                     then, once the Deployment NAME in NS is rolled out, the
                     ValidatingWebhookConfiguration. Without --apply nothing in the
                     cluster changes and the commands are printed instead.
  --force            with --apply: replace the caBundle of an existing configuration
                     without --extra-ca, and apply the configuration even when the
                     Deployment does not exist
  -h, --help         show this help

Without --apply, run the printed commands yourself. To apply the kustomize manifests,
substitute the placeholder (see README.md):
  kubectl kustomize deploy/ | sed "s|$PLACEHOLDER|\$(base64 < DIR/ca-bundle.pem | tr -d '\\n')|" | kubectl apply -f -
EOF
}

die() {
  printf 'gen-certs.sh: %s\n' "$*" >&2
  exit 1
}

need_value() {
  [[ $# -ge 2 && -n $2 && $2 != -* ]] || die "$1 needs a value (see --help)"
}

while [[ $# -gt 0 ]]; do
  case $1 in
    --out) need_value "$@"; OUT=$2; shift 2 ;;
    --namespace) need_value "$@"; NAMESPACE=$2; shift 2 ;;
    --service) need_value "$@"; SERVICE=$2; shift 2 ;;
    --extra-ca) need_value "$@"; EXTRA_CAS+=("$2"); shift 2 ;;
    --apply) APPLY=true; shift ;;
    --force) FORCE=true; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

# Both end up in DNS names and in sed expressions: allow only DNS-1123 labels.
dns_label='^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'
[[ $NAMESPACE =~ $dns_label ]] || die "--namespace '$NAMESPACE' is not a valid namespace name"
[[ $SERVICE =~ $dns_label ]] || die "--service '$SERVICE' is not a valid Service name"
$FORCE && ! $APPLY && die "--force only makes sense with --apply"

command -v openssl >/dev/null 2>&1 || die "openssl not found: install it (e.g. apt-get install openssl)"
if $APPLY; then
  command -v kubectl >/dev/null 2>&1 || die "kubectl not found: --apply needs it (or run without --apply)"
fi
[[ -f $TEMPLATE ]] || die "template $TEMPLATE not found (run the script from its place in deploy/)"

# Read the extra CAs now, before a rerun into the same DIR overwrites ca.crt.
extra_pem=""
for ca in ${EXTRA_CAS[@]+"${EXTRA_CAS[@]}"}; do
  [[ -r $ca ]] || die "--extra-ca $ca: cannot read the file"
  openssl x509 -noout -in "$ca" 2>/dev/null || die "--extra-ca $ca: not a PEM certificate"
  extra_pem+=$(cat "$ca")$'\n'
done

if $APPLY; then
  kubectl get namespace "$NAMESPACE" >/dev/null ||
    die "namespace $NAMESPACE not found (or the cluster is unreachable): create it first"
  # Swapping the caBundle to a new CA while the pods still serve the old certificate
  # (until the kubelet refreshes the Secret volume) fails every call in between.
  if [[ ${#EXTRA_CAS[@]} -eq 0 ]] && ! $FORCE &&
    kubectl get validatingwebhookconfiguration "$WEBHOOK_CONFIG" >/dev/null 2>&1; then
    die "ValidatingWebhookConfiguration $WEBHOOK_CONFIG exists: this is a rotation, so pass the CA in use with --extra-ca (e.g. --extra-ca $OUT/ca.crt), or --force to replace it anyway"
  fi
fi

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat >"$work/openssl.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:$SERVICE.$NAMESPACE.svc, DNS:$SERVICE.$NAMESPACE.svc.cluster.local, DNS:$SERVICE.$NAMESPACE
EOF

serial() { printf '0x%s' "$(openssl rand -hex 16)"; }

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/ca.key" 2>/dev/null
openssl req -x509 -new -config "$work/openssl.cnf" -extensions ca_ext \
  -key "$work/ca.key" -subj "/CN=$SERVICE.$NAMESPACE webhook CA" \
  -sha256 -days "$DAYS" -set_serial "$(serial)" -out "$work/ca.crt"

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/tls.key" 2>/dev/null
openssl req -new -config "$work/openssl.cnf" -key "$work/tls.key" \
  -subj "/CN=$SERVICE.$NAMESPACE.svc" -out "$work/tls.csr"
openssl x509 -req -in "$work/tls.csr" -CA "$work/ca.crt" -CAkey "$work/ca.key" \
  -set_serial "$(serial)" -sha256 -days "$DAYS" \
  -extfile "$work/openssl.cnf" -extensions server_ext -out "$work/tls.crt" 2>/dev/null
openssl verify -CAfile "$work/ca.crt" "$work/tls.crt" >/dev/null ||
  die "the new serving certificate does not verify against the new CA"

{ cat "$work/ca.crt"; printf '%s' "$extra_pem"; } >"$work/ca-bundle.pem"
ca_bundle_b64=$(base64 <"$work/ca-bundle.pem" | tr -d '\n')

# base64 never contains '|' or '&', and the names are DNS labels, so sed is safe.
sed -e "s|$PLACEHOLDER|$ca_bundle_b64|" \
  -e "s|flink-ha-system|$NAMESPACE|g" \
  -e "/^ *service:/,/^ *port:/ s|name: flink-ha-webhook\$|name: $SERVICE|" \
  "$TEMPLATE" >"$work/validating-webhook.rendered.yaml"
grep -q "$PLACEHOLDER" "$work/validating-webhook.rendered.yaml" &&
  die "rendering left $PLACEHOLDER in the manifest"
grep -q "name: $SERVICE\$" "$work/validating-webhook.rendered.yaml" ||
  die "rendering did not set the service name (has $TEMPLATE changed shape?)"

mkdir -p "$OUT"
for f in ca.key ca.crt tls.key tls.crt ca-bundle.pem validating-webhook.rendered.yaml; do
  mv -f "$work/$f" "$OUT/$f"
done
rendered="$OUT/validating-webhook.rendered.yaml"
echo "Wrote ca.key ca.crt tls.key tls.crt ca-bundle.pem validating-webhook.rendered.yaml to $OUT"
echo "Serving certificate names: $SERVICE.$NAMESPACE.svc, $SERVICE.$NAMESPACE.svc.cluster.local, $SERVICE.$NAMESPACE"

secret_cmd=(kubectl create secret tls "$SECRET" -n "$NAMESPACE"
  --cert="$OUT/tls.crt" --key="$OUT/tls.key" --dry-run=client -o yaml)

if ! $APPLY; then
  cat <<EOF

Nothing was applied. To install (the Deployment first, so the configuration never
points at a Service without ready pods):
  ${secret_cmd[*]} | kubectl apply -f -
  kubectl -n $NAMESPACE rollout status deployment/$SERVICE
  kubectl apply -f $rendered
EOF
  exit 0
fi

echo "Applying Secret $NAMESPACE/$SECRET"
"${secret_cmd[@]}" | kubectl apply -f -

if kubectl -n "$NAMESPACE" get deployment "$SERVICE" >/dev/null 2>&1; then
  echo "Waiting for Deployment $NAMESPACE/$SERVICE to be rolled out"
  if ! kubectl -n "$NAMESPACE" rollout status "deployment/$SERVICE" --timeout=300s; then
    $FORCE || die "Deployment $NAMESPACE/$SERVICE is not ready; the webhook configuration was NOT applied. Once the pods are ready: kubectl apply -f $rendered"
  fi
elif ! $FORCE; then
  die "no Deployment $NAMESPACE/$SERVICE: the webhook configuration was NOT applied (with failurePolicy Fail it would reject ConfigMap writes until pods run). Deploy the webhook, then: kubectl apply -f $rendered"
fi

echo "Applying ValidatingWebhookConfiguration $WEBHOOK_CONFIG"
kubectl apply -f "$rendered"
