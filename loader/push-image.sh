#!/bin/sh
# Build and push the model-loader image (loader/Dockerfile) of one stack to the ECR
# repository the stack creates, unless its tag is already there (tags are immutable).
# Run by .github/workflows/deploy.yml before `pulumi up`, with the deploy role.
#   loader/push-image.sh <stack> <region>
# Prints the image digest (record it as MODEL_LOADER_IMAGE_DIGEST in components/versions.py)
# and fails when a recorded digest differs from the repository's.
set -eu
stack=$1
region=$2
py=.venv/bin/python
repo_name=$($py -c 'import sys; from stacks.serving_layer import loader_repository_name as n; print(n(sys.argv[1]))' "$stack")
tag=$($py -c 'from components.versions import MODEL_LOADER_IMAGE_TAG as t; print(t)')
recorded=$($py -c 'from components.versions import MODEL_LOADER_IMAGE_DIGEST as d; print(d or "")')
account=$(aws sts get-caller-identity --query Account --output text)
registry="$account.dkr.ecr.$region.amazonaws.com"
image="$registry/$repo_name:$tag"

if ! aws ecr describe-repositories --region "$region" --repository-names "$repo_name" >/dev/null; then
  echo "::error::ECR repository $repo_name does not exist yet (first deploy of $stack): create it once with the targeted update in docs/model-artifacts.md, then rerun"
  exit 1
fi

digest_of() {
  aws ecr describe-images --region "$region" --repository-name "$repo_name" \
    --image-ids imageTag="$tag" --query 'imageDetails[0].imageDigest' --output text 2>/dev/null
}

if digest=$(digest_of); then
  echo "$image is already there ($digest): tags are immutable, nothing to build"
else
  .venv/bin/hadolint loader/Dockerfile
  aws ecr get-login-password --region "$region" \
    | docker login --username AWS --password-stdin "$registry"
  docker build --provenance=false -f loader/Dockerfile -t "$image" .
  docker push "$image"
  digest=$(digest_of)
fi

echo "model-loader $image digest: $digest"
if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then
  echo "model-loader \`$image\`: \`$digest\` (MODEL_LOADER_IMAGE_DIGEST)" >> "$GITHUB_STEP_SUMMARY"
fi
if [ -n "$recorded" ] && [ "$recorded" != "$digest" ]; then
  echo "::error::components/versions.py records $recorded for $tag, the repository holds $digest"
  exit 1
fi
