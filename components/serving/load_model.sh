#!/bin/sh
# mlstack model loader: fetch exactly one published model version from S3 and prove
# every byte matches its manifest before the model server may start.
#
# Environment (set by the InferenceService):
#   MODEL_BUCKET        bucket name          MODEL_NAME     expected manifest "name"
#   MODEL_MANIFEST_KEY  models/<name>/manifests/<version>.json
#   MODEL_BLOBS_PREFIX  models/<name>/blobs/sha256/   MODEL_VERSION  expected "version"
#   MODEL_DIR           destination directory (an emptyDir shared with the server)
#
# Tools: aws (CLI v2), jq, sha256sum, stat, find -- all present in the pinned
# public.ecr.aws/aws-cli/aws-cli image. Any mismatch exits non-zero, which fails
# the init container and so the pod: a corrupted or partial model is never served.
set -eu

fail() {
  echo "model-loader: FAILED: $*" >&2
  exit 1
}
log() { echo "model-loader: $*"; }

: "${MODEL_BUCKET:?}" "${MODEL_MANIFEST_KEY:?}" "${MODEL_BLOBS_PREFIX:?}"
: "${MODEL_NAME:?}" "${MODEL_VERSION:?}" "${MODEL_DIR:?}"
case "$MODEL_BLOBS_PREFIX" in */) ;; *) fail "MODEL_BLOBS_PREFIX must end with '/'" ;; esac

manifest_uri="s3://${MODEL_BUCKET}/${MODEL_MANIFEST_KEY}"
blobs_uri="s3://${MODEL_BUCKET}/${MODEL_BLOBS_PREFIX}"
manifest="${MODEL_DIR}/.mlstack-manifest.json"
marker="${MODEL_DIR}/.mlstack-verified"

mkdir -p "$MODEL_DIR"

# The manifest is written last by `mlstack model push`: if it is there, the version is
# complete. Fetch it first and check it names the version this pod was pinned to.
aws s3 cp --only-show-errors "$manifest_uri" "$manifest" \
  || fail "no manifest at $manifest_uri (version not published?)"
jq -e --arg n "$MODEL_NAME" --arg v "$MODEL_VERSION" \
  '(.name == $n) and (.version == $v) and (.files | type == "array" and length > 0)' \
  "$manifest" >/dev/null \
  || fail "manifest does not describe $MODEL_NAME version $MODEL_VERSION with a file list"

# Paths must stay inside MODEL_DIR: relative, no '..' segment, no control characters.
jq -e '[.files[].path | type == "string" and length > 0
        and (startswith("/") | not)
        and (test("(^|/)\\.\\.(/|$)") | not)
        and (test("[\u0000-\u001f]") | not)] | all' "$manifest" >/dev/null \
  || fail "manifest lists an unsafe file path"

manifest_sum=$(sha256sum "$manifest" | cut -d ' ' -f 1)
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$manifest_sum" ]; then
  log "already verified $MODEL_NAME $MODEL_VERSION (pod restart); nothing to fetch"
  exit 0
fi
rm -f "$marker"

# Download exactly the listed files, each from its content-addressed blob.
jq -e '[.files[].sha256 | test("^[0-9a-f]{64}$")] | all' "$manifest" >/dev/null \
  || fail "manifest lists a malformed sha256"
jq -r '.files[] | [.sha256, .path] | @tsv' "$manifest" | while IFS="$(printf '\t')" read -r sum path; do
  aws s3 cp --only-show-errors "${blobs_uri}${sum}" "${MODEL_DIR}/${path}" \
    || fail "download of ${blobs_uri}${sum} (${path}) failed"
done

# Verify every listed file: size first (cheap), then sha256.
count=0
tab=$(printf '\t')
jq -r '.files[] | [(.sha256 | ascii_downcase), (.size | tostring), .path] | @tsv' "$manifest" > "${MODEL_DIR}/.mlstack-files.tsv"
while IFS="$tab" read -r want_sum want_size path; do
  file="${MODEL_DIR}/${path}"
  [ -f "$file" ] || fail "missing file $path"
  size=$(stat -c %s "$file")
  [ "$size" = "$want_size" ] || fail "size mismatch for $path: manifest $want_size, got $size"
  got_sum=$(sha256sum "$file" | cut -d ' ' -f 1)
  [ "$got_sum" = "$want_sum" ] || fail "sha256 mismatch for $path: manifest $want_sum, got $got_sum"
  count=$((count + 1))
done < "${MODEL_DIR}/.mlstack-files.tsv"
rm -f "${MODEL_DIR}/.mlstack-files.tsv"

# Nothing but the listed files (and our own bookkeeping) may be in the model directory.
listed=$(jq -r '.files | length' "$manifest")
present=$(find "$MODEL_DIR" -type f ! -name '.mlstack-*' | wc -l | tr -d ' ')
[ "$present" = "$listed" ] || fail "model directory holds $present files, manifest lists $listed"

echo "$manifest_sum" > "$marker"
log "verified $count files of $MODEL_NAME $MODEL_VERSION against $manifest_uri"
