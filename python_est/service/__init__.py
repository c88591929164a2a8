"""The EST operations of RFC 7030 (as clarified by RFC 8951): `EstService.handle(request, peer)`.

No sockets, threads or files: an `HttpRequest` and the `PeerIdentity` the TLS layer established
go in, an `HttpResponse` comes out, and every refusal is raised as an `EstError` (the server,
through `messages.error_response`, turns it into a short text/plain answer). It is safe to call
from many worker threads at once.

Split by concept: `core` (`EstService`: the operations, and the handler of each for the routing
table), `labelplan` (what start-up derives from each label), `intake` (reading and checking
the CSR of a request), `auth` (who asked), `enforce` (what /csrattrs demands of a CSR),
`issuance` (signing, the ledger record, success bodies), `approval` (manual approval: 202 and
the pending queue) and `renewal` (which certificate a reenrollment renews, and on which labels).

Routing. `/.well-known/est[/<label>]/<operation>` (resolved by `python_est.routes` through
`EstService.operation`); an unknown label is 404, a wrong method 405
with `Allow`. `/cacerts` and `/csrattrs` are anonymous GETs (§4.1.1, §4.5); the POST operations
authenticate first (§4.2, R43), then read the body.

Authentication (§3.2.3, §3.3). Each label names, per operation, alternatives of methods that must
all hold ("cert", "srp", "basic", "cert+basic"). TLS credentials (a validated client certificate,
a TLS-SRP user) are weighed first; HTTP Basic is consulted only when they do not already satisfy
an alternative, so an empty `Authorization: Basic Og==` that libest's estclient sends on its
retry never spoils a certificate-authenticated request. A missing credential is 401 with
`WWW-Authenticate: Basic realm=...` whenever Basic could complete an alternative; a wrong password
is 401 with the challenge again, counted by the `python_est.ratelimit` counters (per user and
address pair, per account, per address); a locked login gets 429 with `Retry-After` and the time
left before its password is even checked.

Linking (§3.5). With `require_pop`, /csrattrs lists challengePassword and every CSR must carry
base64(tls-unique) of its own connection there (PrintableString or UTF8String, compared in
constant time); a TLS 1.3 connection, which has no tls-unique, is refused with that reason. RA
clients are exempt (§3.7). Without `require_pop`, a challengePassword shaped like a tls-unique is
still checked. See `python_est.policy.check_linking`.

CSR attributes (§4.5.2). With `enforce_csrattrs`, a CSR that misses what /csrattrs announces gets
400 naming every shortfall; `enforce` documents how each CsrAttrs item is read.

Authorization: see the section comment in `python_est.policy` (RA certificates may request any
subject the profile allows; password users their allowed names, with at least one allowed CN and
other subject attributes only per `subject_attributes`; a plain client certificate only its own
Subject and subjectAltNames). For every requester, names with control or bidi characters,
non-ASCII DNS names and CSRs above the RDN/attribute/extension caps get 400, and subject values
conflicting with `subject_fixed` get 403 (`python_est.policy.subject`).

Reenrollment (§4.2.2, §3.3.2). The certificate being renewed is the validated TLS client
certificate; without one the answer is 403. It must be signed by this EST CA, not revoked, and
recorded in the ledger as issued under this label or a label named in `reenroll_from`. The CSR
Subject and subjectAltNames must equal the certificate's, compared exactly (NFC values, ASN.1
string type ignored, multi-valued RDNs as multisets; DNS names and e-mail domains ignore ASCII
case). Rekey (new key) and renewal (same key) are both allowed. An RA may renew on behalf of a
device: the CSR's names must equal those of a current certificate of the label (see `renewal`).

Server-side key generation (§4.4). Authenticated, linked, enforced and authorized like
/simpleenroll, but the CSR's key and signature are ignored. The key type is the label's
`serverkeygen_key_type`, unless the label's csrattrs announce a key type that excludes it; then
the first announced type that can be generated (`enforce.serverkeygen_key_type`). The answer is
multipart/mixed: the PKCS#8 key, then the certs-only certificate, both base64. The private key
exists only in that response (never logged, written or recorded); the ledger marks the
certificate `server_generated_key`. A CSR asking for an encrypted key (DecryptKeyIdentifier or
AsymmetricDecryptKeyIdentifier, §4.4.1.1/§4.4.1.2) gets the key as EnvelopedData around a
SignedData key package, to a registered KEK of the label, the TLS client certificate or a
current certificate of the same requester; one
the server cannot honour gets 400 before anything is issued, never a plaintext key
(`keyprotect`).

Manual approval (§4.2.3). `approval = manual` holds /simpleenroll and /serverkeygen requests, and
renewals of certificates from other labels: 202 with Retry-After until an operator decides with
`python-est requests`. A profile granting id-kp-cmcRA holds every request; see `approval`.

Issuance. Every certificate is committed to the ledger before the response is built (a serial
collision signs again, up to three times), then one audit line is logged on "python_est.audit".
"""

from __future__ import annotations

from python_est.service.core import PENDING_RETRY_AFTER, EstService, utcnow
from python_est.service.keyprotect import signer_from
from python_est.service.labelplan import LabelError, check_label

__all__ = [
    "PENDING_RETRY_AFTER",
    "EstService",
    "LabelError",
    "check_label",
    "signer_from",
    "utcnow",
]
