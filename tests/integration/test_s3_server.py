"""Checks of the local S3 endpoint (Swift + s3api) that the benchmarks rely on.

Error codes asserted here are what Swift 2.30's s3api really returns.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from s3server import OTHER_ACCOUNT, make_s3_client

pytestmark = pytest.mark.s3


def _error(exc_info):
    response = exc_info.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_put_get_round_trip(s3_client, s3_bucket):
    payload = os.urandom(300 * 1024 + 7)
    s3_client.put_object(Bucket=s3_bucket, Key="data/blob.bin", Body=payload)

    head = s3_client.head_object(Bucket=s3_bucket, Key="data/blob.bin")
    assert head["ContentLength"] == len(payload)

    body = s3_client.get_object(Bucket=s3_bucket, Key="data/blob.bin")["Body"].read()
    assert body == payload


def test_ranged_get(s3_client, s3_bucket):
    payload = bytes(range(256)) * 40  # 10,240 bytes
    s3_client.put_object(Bucket=s3_bucket, Key="r.bin", Body=payload)

    resp = s3_client.get_object(Bucket=s3_bucket, Key="r.bin", Range="bytes=1000-1999")
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert resp["ContentRange"] == f"bytes 1000-1999/{len(payload)}"
    assert resp["Body"].read() == payload[1000:2000]

    suffix = s3_client.get_object(Bucket=s3_bucket, Key="r.bin", Range="bytes=-100")
    assert suffix["Body"].read() == payload[-100:]

    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as exc_info:
        s3_client.get_object(Bucket=s3_bucket, Key="r.bin", Range=f"bytes={len(payload) + 10}-")
    assert _error(exc_info) == ("InvalidRange", 416)


def test_list_objects_v2_paginates_over_1005_objects(s3_client, s3_bucket):
    keys = [f"many/obj-{i:05d}" for i in range(1005)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(lambda k: s3_client.put_object(Bucket=s3_bucket, Key=k, Body=k.encode()), keys))
    # Outside the prefix: must not be listed.
    s3_client.put_object(Bucket=s3_bucket, Key="manyx", Body=b"x")
    s3_client.put_object(Bucket=s3_bucket, Key="other/obj", Body=b"x")

    listed, pages = [], 0
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="many/"):
        pages += 1
        assert page["KeyCount"] == len(page.get("Contents", []))
        listed.extend(obj["Key"] for obj in page.get("Contents", []))
    assert pages == 2  # 1,000 per page at most
    assert listed == keys  # complete, no duplicates, lexicographic order

    # Explicit page size and continuation tokens.
    first = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="many/", MaxKeys=600)
    assert first["IsTruncated"] and first["KeyCount"] == 600
    second = s3_client.list_objects_v2(
        Bucket=s3_bucket, Prefix="many/", MaxKeys=600, ContinuationToken=first["NextContinuationToken"]
    )
    assert not second["IsTruncated"] and second["KeyCount"] == 405


def test_delimiter_listing_returns_common_prefixes(s3_client, s3_bucket):
    for key in ["train/a/0.jpg", "train/a/1.jpg", "train/b/0.jpg", "train/index.json", "val/0.jpg"]:
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=b"x")

    top = s3_client.list_objects_v2(Bucket=s3_bucket, Delimiter="/")
    assert [p["Prefix"] for p in top.get("CommonPrefixes", [])] == ["train/", "val/"]
    assert top.get("Contents", []) == []

    train = s3_client.list_objects_v2(Bucket=s3_bucket, Prefix="train/", Delimiter="/")
    assert [p["Prefix"] for p in train["CommonPrefixes"]] == ["train/a/", "train/b/"]
    assert [o["Key"] for o in train["Contents"]] == ["train/index.json"]


def test_wrong_secret_key_is_rejected(s3_server, s3_client, s3_bucket):
    from botocore.exceptions import ClientError

    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    bad = make_s3_client(s3_server, secret_key="not-the-secret")
    with pytest.raises(ClientError) as exc_info:
        bad.get_object(Bucket=s3_bucket, Key="k")
    assert _error(exc_info) == ("SignatureDoesNotMatch", 403)
    with pytest.raises(ClientError) as exc_info:
        bad.list_objects_v2(Bucket=s3_bucket)
    assert _error(exc_info) == ("SignatureDoesNotMatch", 403)


def test_unknown_access_key_is_rejected(s3_server):
    # Swift answers SignatureDoesNotMatch here, where AWS says InvalidAccessKeyId.
    from botocore.exceptions import ClientError

    bad = make_s3_client(s3_server, access_key="nobody:none", secret_key="x")
    with pytest.raises(ClientError) as exc_info:
        bad.list_buckets()
    assert _error(exc_info) == ("SignatureDoesNotMatch", 403)


def test_other_account_gets_access_denied(s3_server, s3_client, s3_bucket):
    from botocore.exceptions import ClientError

    s3_client.put_object(Bucket=s3_bucket, Key="k", Body=b"x")
    other = make_s3_client(s3_server, **OTHER_ACCOUNT)
    with pytest.raises(ClientError) as exc_info:
        other.get_object(Bucket=s3_bucket, Key="k")
    assert _error(exc_info) == ("AccessDenied", 403)


def test_missing_bucket_and_key(s3_client, s3_bucket):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as exc_info:
        s3_client.list_objects_v2(Bucket="dnnbench-no-such-bucket")
    assert _error(exc_info) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc_info:
        s3_client.get_object(Bucket="dnnbench-no-such-bucket", Key="k")
    assert _error(exc_info) == ("NoSuchBucket", 404)
    with pytest.raises(ClientError) as exc_info:
        s3_client.get_object(Bucket=s3_bucket, Key="no/such/key")
    assert _error(exc_info) == ("NoSuchKey", 404)
