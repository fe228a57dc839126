-- A registry written by schema 6 (huren before commit 3a4adbf, "One Registrar for every change
-- of trust"): that version's own `huren registry create-region` (330100), `create-operator`
-- (hub-admin) and `add-issuer` (hangzhou, its profile and one ES256 key whose private key is
-- hangzhou-signing-key.pem beside this file, a test key), dumped with sqlite3's iterdump.
-- tests/integration/test_migrate.py loads it into a file and upgrades it.
BEGIN TRANSACTION;
CREATE TABLE "audit" (
   "seq" INTEGER PRIMARY KEY,
   "at" TEXT NOT NULL,
   "actor" TEXT NOT NULL,
   "action" TEXT NOT NULL,
   "target" TEXT NOT NULL,
   "outcome" TEXT NOT NULL,
   "detail" TEXT,
   "state_digest" TEXT NOT NULL,
   "previous_hash" TEXT,
   "entry_hash" TEXT,
   "trust_version" INTEGER
);
INSERT INTO "audit" VALUES(1,'2026-12-05T13:46:38.119559+00:00','local:root','create-region','330100','ok','杭州','ec44982a76ab6cd385ebd3cbb21442d5721f0ea7e726fc23b6baffd15290c5e8','0000000000000000000000000000000000000000000000000000000000000000','88d5159119d797b8a0ff5d3da827bb0a47bf0a92effcf1cf654167e1068581c0',1);
INSERT INTO "audit" VALUES(2,'2026-12-05T13:46:38.606441+00:00','local:root','create-operator','hub-admin','ok','hub administrator, key 92e1cc645ba7a19f','693008bda3036a4b4893669d6951e1ebc4edca566eef18fe5c9730a6f31a79fa','88d5159119d797b8a0ff5d3da827bb0a47bf0a92effcf1cf654167e1068581c0','4724d9e031a1ea3ed03d8cfd77f987faeaab2d4fb75748e990ee9a157bfdd168',2);
INSERT INTO "audit" VALUES(3,'2026-12-05T13:46:39.090079+00:00','local:root','register-issuer','hangzhou','ok','region 330100, profile hangzhou@1, keys hangzhou-hL8V_24XA61E','6968a60b0a03a4867f62387ac617b43f5e81e3c1f8518cee21f8aff758b06d2c','4724d9e031a1ea3ed03d8cfd77f987faeaab2d4fb75748e990ee9a157bfdd168','b47023bc3f7d0ac51aa29a6b34f63aa8735d61751ce1ff3c976c14cf5567f8ff',5);
CREATE TABLE "issuers" (
   "id" TEXT PRIMARY KEY,
   "region" TEXT NOT NULL,
   "name" TEXT NOT NULL,
   "profile_id" TEXT NOT NULL,
   "profile_version" INTEGER NOT NULL,
   "online_code_prefix" TEXT,
   "online_verify_url" TEXT,
   "online_client_id" TEXT,
   "online_client_secret" BLOB,
   "pseudonym_key" BLOB,
   "code_name" TEXT,
   "added_at" TEXT NOT NULL
);
INSERT INTO "issuers" VALUES('hangzhou','330100','杭州健康码','hangzhou',1,NULL,NULL,NULL,NULL,NULL,NULL,'2026-12-05T13:46:39.090079+00:00');
CREATE TABLE "keys" (
   "issuer_id" TEXT REFERENCES "issuers"("id"),
   "kid" TEXT,
   "algorithm" TEXT NOT NULL,
   "spki_der" BLOB NOT NULL,
   "not_before" TEXT,
   "not_after" TEXT,
   "status" TEXT NOT NULL,
   "status_since" TEXT,
   "usage" TEXT,
   "certificate_sha256" TEXT,
   "added_at" TEXT NOT NULL,
   PRIMARY KEY ("issuer_id", "kid")
);
INSERT INTO "keys" VALUES('hangzhou','hangzhou-hL8V_24XA61E','ES256',X'3059301306072A8648CE3D020106082A8648CE3D03010703420004E631D5BBAB5C60F3711E29549C9AC3B28BDE935664C842FE4D783BEB44D10A147645A1C62A7E710FDA8CBA11CA349831EA43D6C4D7B4D397FC54A50D7F7710F5',NULL,NULL,'active',NULL,NULL,NULL,'2026-12-05T13:46:39.090079+00:00');
CREATE TABLE "meta" (
   "key" TEXT PRIMARY KEY,
   "value" TEXT
);
INSERT INTO "meta" VALUES('schema_version','6');
INSERT INTO "meta" VALUES('trust_version','5');
INSERT INTO "meta" VALUES('audit_head','3:b47023bc3f7d0ac51aa29a6b34f63aa8735d61751ce1ff3c976c14cf5567f8ff');
CREATE TABLE "operators" (
   "name" TEXT PRIMARY KEY,
   "region" TEXT,
   "spki_sha256" TEXT NOT NULL,
   "active" INTEGER NOT NULL,
   "created_at" TEXT NOT NULL
);
INSERT INTO "operators" VALUES('hub-admin',NULL,'92e1cc645ba7a19fca4840514cc9766fae9c7634eca1dd864a63e3b501cd0136',1,'2026-12-05T13:46:38.606441+00:00');
CREATE TABLE "policies" (
   "destination" TEXT,
   "version" INTEGER,
   "policy_id" TEXT NOT NULL,
   "source" TEXT NOT NULL,
   "sha256" TEXT NOT NULL,
   "added_at" TEXT NOT NULL,
   PRIMARY KEY ("destination", "version")
);
CREATE TABLE "profiles" (
   "profile_id" TEXT,
   "version" INTEGER,
   "source" TEXT NOT NULL,
   "sha256" TEXT NOT NULL,
   "added_at" TEXT NOT NULL,
   PRIMARY KEY ("profile_id", "version")
);
INSERT INTO "profiles" VALUES('hangzhou',1,'# Translation profile for the Hangzhou health code (杭州健康码, region 330100).
# See docs/profiles.md for the language.

[profile]
id = "hangzhou"
version = 1
description = "Hangzhou health code: compact JWS (ES256), JSON payload, Chinese colour words"

[envelope]
format = "jws"
text = "compact"
payload = "json"

[claims]
issuer = "iss"
issued_at = { path = "iat", format = "unix-s" }
expires_at = { path = "exp", format = "unix-s" }
state = "hc"
identity = { scheme = "cn-resident-id", path = "idn" }

# Every state Hangzhou issues, from least to most severe; anything else is refused.
[states]
"绿码" = "GREEN"
"灰码" = { colour = "GREY", note = "pending: the back-end check has not finished" }
"黄码" = "YELLOW"
"红码" = "RED"

[validity]
max = "24h"
','4ed8e5eb1f0f66f3b27ba6e132bdca1eaca031e225be339b8106a4c94cc104ba','2026-12-05T13:46:39.090079+00:00');
CREATE TABLE "regions" (
   "code" TEXT PRIMARY KEY,
   "name" TEXT NOT NULL,
   "created_at" TEXT NOT NULL
);
INSERT INTO "regions" VALUES('330100','杭州','2026-12-05T13:46:38.119559+00:00');
CREATE TABLE "requests" (
   "actor" TEXT,
   "request_id" TEXT,
   "action" TEXT NOT NULL,
   "digest" TEXT NOT NULL,
   "audit_seq" INTEGER NOT NULL,
   PRIMARY KEY ("actor", "request_id")
);
INSERT INTO "requests" VALUES('local:root','f3e6993f-7684-4dfb-a709-562077750997','create-region','0eebc8eb306b95f5919fc848a50f4a5b64a211b552cc17d9f0082586e97413ca',1);
INSERT INTO "requests" VALUES('local:root','7570cb2f-0a62-4f60-93df-c99c7da5d105','create-operator','8410486a9436c21452bbc9354d1b846bd7706954fbceb3cb84c9242767af772c',2);
INSERT INTO "requests" VALUES('local:root','dc6704d7-daff-434a-92ae-df7b9b93b24b','register-issuer','0f4760d6637c3c4be51392eb9b266a66f128f6462586b3758fa2e5df6689ec40',3);
CREATE TABLE "revocations" (
   "issuer_id" TEXT REFERENCES "issuers"("id"),
   "kid" TEXT,
   "counter" INTEGER NOT NULL,
   "ids" TEXT NOT NULL,
   "set_at" TEXT NOT NULL,
   PRIMARY KEY ("issuer_id", "kid")
);
COMMIT;
