#!/usr/bin/env bash
# Configure the default DVC remote (the shared cache) of the DVC project in the current directory.
#
# Usage: scripts/remote_setup.sh [options] URL
#   URL                    a directory (local disk or network mount, e.g. /mnt/team/hmu-cache)
#                          or an S3 location s3://BUCKET/PREFIX
# Options:
#   -n, --name NAME        remote name (default: "shared" for a directory, "s3" for S3)
#   -f, --force            overwrite a remote of the same name
#   --endpoint URL         S3 only: endpoint of an S3-compatible server (MinIO, Ceph, ...)
#   --region REGION        S3 only: bucket region (e.g. us-east-1)
#   --profile NAME         S3 only: AWS profile, written to .dvc/config.local (not committed)
#   --store-credentials    S3 only: copy $AWS_ACCESS_KEY_ID and $AWS_SECRET_ACCESS_KEY
#                          (and $AWS_SESSION_TOKEN if set) into .dvc/config.local
#   -h, --help             show this help
#
# The remote name and URL (and endpoint/region) go to .dvc/config: commit it so that every clone
# knows the shared cache. Credentials never go there; without --profile or --store-credentials,
# DVC reads them from the usual AWS environment variables or ~/.aws files. See docs/remote.md.
set -euo pipefail

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { echo "remote_setup.sh: $*" >&2; exit 2; }

name="" force=() endpoint="" region="" profile="" store_credentials=0 url=""
while (($#)); do
    case "$1" in
        -n | --name) name="${2:?--name needs a value}"; shift 2 ;;
        -f | --force) force=(-f); shift ;;
        --endpoint) endpoint="${2:?--endpoint needs a value}"; shift 2 ;;
        --region) region="${2:?--region needs a value}"; shift 2 ;;
        --profile) profile="${2:?--profile needs a value}"; shift 2 ;;
        --store-credentials) store_credentials=1; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) die "unknown option '$1' (see --help)" ;;
        *) [[ -z "$url" ]] || die "only one URL expected, got '$url' and '$1'"; url="$1"; shift ;;
    esac
done
[[ -n "$url" ]] || die "missing URL: a directory or s3://BUCKET/PREFIX (see --help)"

# Check everything before the first change to the config.
if [[ "$url" == s3://* ]]; then
    [[ "$url" =~ ^s3://[^/]+ ]] || die "S3 URL '$url' has no bucket name"
    if ((store_credentials)); then
        [[ -n "${AWS_ACCESS_KEY_ID:-}" && -n "${AWS_SECRET_ACCESS_KEY:-}" ]] ||
            die "--store-credentials needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set"
    fi
    name="${name:-s3}"
else
    [[ "$url" != *://* ]] || die "unsupported URL '$url': give a directory or s3://BUCKET/PREFIX"
    [[ -z "$endpoint$region$profile" && $store_credentials == 0 ]] ||
        die "--endpoint/--region/--profile/--store-credentials apply to s3:// URLs only"
    # Store an absolute path (symlinks kept), so the committed config names the same folder
    # from every clone.
    [[ "$url" == /* ]] || url="$(realpath -m -s -- "$url")"
    name="${name:-shared}"
fi

dvc remote add -d "${force[@]}" "$name" "$url"
[[ -z "$endpoint" ]] || dvc remote modify "$name" endpointurl "$endpoint"
[[ -z "$region" ]] || dvc remote modify "$name" region "$region"
[[ -z "$profile" ]] || dvc remote modify --local "$name" profile "$profile"
if ((store_credentials)); then
    dvc remote modify --local "$name" access_key_id "$AWS_ACCESS_KEY_ID"
    dvc remote modify --local "$name" secret_access_key "$AWS_SECRET_ACCESS_KEY"
    [[ -z "${AWS_SESSION_TOKEN:-}" ]] ||
        dvc remote modify --local "$name" session_token "$AWS_SESSION_TOKEN"
fi
echo "Default DVC remote '$name' -> $url (run 'dvc push' after 'dvc repro'; 'dvc pull' in clones)"
