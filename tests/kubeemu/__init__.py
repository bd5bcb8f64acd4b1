"""
kubeemu — an emulated Kubernetes API server for running the real Kopf operator in tests.

Built on kmock 0.8 (``kmock.RawHandler`` + ``kmock.Server``): kmock provides the
HTTP plumbing and request recording; the Kubernetes semantics are implemented
here (:mod:`kubeemu.cluster`, :mod:`kubeemu.server`), because kmock's own
``KubernetesEmulator`` lacks resourceVersions, watch resumption, selectors, the
status split, PUT, apply, finalizers and garbage collection.

Public surface::

    from kubeemu import Emulator                   # emu.start()/stop(), emu.url, write_kubeconfig(),
                                                   # register_crds(), register_builtin_extras(), add_user(),
                                                   # grant(),
                                                   # webhook_services, webhook_calls
    from kubeemu.client import KubeClient, ApiError
    from kubeemu.tls import make_ca_and_cert       # (ca_pem, cert_path, key_path) for a webhook server
    pytest_plugins = ["kubeemu.fixtures"]          # fixtures: emulator, kube, kubeconfig

Testing admission webhooks end to end: start the webhook server with
``make_ca_and_cert(dir, ["127.0.0.1", "localhost"])``'s cert and key, then create a
``Mutating``/``ValidatingWebhookConfiguration`` through the API with ``clientConfig.url``
``https://127.0.0.1:PORT/path`` and ``caBundle: base64(ca_pem)``. Every write through the
HTTP API (POST, PUT, PATCH incl. apply, DELETE, deletecollection, ``/status``) is then
admitted by it with the caller's ``userInfo``; see :mod:`kubeemu.admission`. A webhook may
call back into the emulator (e.g. a SubjectAccessReview) while it is being called.

What it implements: discovery (``/api``, ``/apis``, group and group-version
documents with scope, verbs, kinds, short names, categories and ``x/status``
entries; ``/version``; health paths), the built-in resources the operator uses,
CRDs through the API (served and discoverable at once, with Established and
NamesAccepted conditions), structural-schema pruning/defaulting/validation of
custom resources (422 ``Invalid`` with ``details.causes[].field``), object
metadata (uid, creationTimestamp, one global monotonically increasing
resourceVersion, generation, generateName), optimistic concurrency (409),
GET/LIST/WATCH/POST/PUT/PATCH (merge, json, strategic, apply)/DELETE/
deletecollection, the status subresource split, label and field selectors,
finalizers and deletionTimestamp, ownerReference garbage collection
(Background, Foreground, Orphan), namespace termination, authentication
(bearer token → user table; no token → ``system:admin`` in ``system:masters``),
authorization of every request by RBAC (:mod:`kubeemu.rbac`),
dynamic admission control (mutating then validating webhooks over real HTTPS,
:mod:`kubeemu.admission`), and ``SubjectAccessReview``/``LocalSubjectAccessReview``/
``SelfSubjectAccessReview`` answered by RBAC over the stored Roles, ClusterRoles
(with aggregation) and bindings (:mod:`kubeemu.rbac`), and ``pods/log`` (GET, with
``container``, ``tailLines`` and ``limitBytes``) serving the text a test recorded as the
kubelet would have (``emu.set_container_log``; 400 while nothing is recorded for the pod).

Deviations from the real API server (on purpose, for a test emulator):

* CEL rules (``x-kubernetes-validations``) are accepted in CRDs but NOT evaluated;
  a real apiextensions-apiserver test tier covers them. Go RE2 ``pattern``s are
  evaluated with Python's ``re``. Built-in kinds are not schema-validated.
* Strategic merge patch approximates the Go struct tags by list field names
  (see :mod:`kubeemu.patching`); custom resources reject it with 415 as real.
* Server-side apply is create-or-merge: no field ownership, no conflicts, no
  ``managedFields``, fields removed from a later apply are kept; ``force`` ignored.
* No controllers other than the garbage collector, namespace termination and
  CRD cleanup: Deployments get no ReplicaSets/Pods, Jobs never run, Pods never
  get scheduled (their status stays ``Pending`` unless a test patches it) and
  are deleted at once (no kubelet, no grace period).
* LIST ignores ``resourceVersion``/``resourceVersionMatch`` and always serves
  the current state; ``continue`` pages are read from the current state too.
* ``generation`` is kept only for kinds that track it in Kubernetes
  (custom resources, CRDs, Pods, workload kinds, HPA, PDB, webhook configs).
* DELETE answers with the object (its last state) for every kind, never a
  ``Status``; graceful deletion is immediate (``deletionGracePeriodSeconds: 0``).
* Multi-version CRDs serve the same stored object under every version
  (conversion strategy ``None`` only); no ``scale`` subresource behaviour.
* No aggregated discovery, OpenAPI documents, Table output or protobuf: clients
  fall back to plain JSON discovery and lists (kubectl prints a default table).
* Watch history is bounded (``history_limit`` events) and can be compacted on
  demand (``emu.compact()``) to provoke 410 Gone; bookmarks come every
  ``bookmark_interval`` seconds of idleness.
* Authorization is RBAC only (no Node or webhook authorizer), decided on every
  request (403 worded as the API server's) and in access reviews. Requests without
  credentials are ``system:admin`` in ``system:masters`` (bound to ``cluster-admin``).
  Of the bootstrap roles only ``cluster-admin``, ``system:discovery``,
  ``system:basic-user`` and ``system:public-info-viewer`` exist (no ``view``, ``edit``,
  ``admin``, no controller roles): create what a test needs (``emu.grant()``).
* Admission: only webhooks; none of the built-in admission plugins (LimitRanger,
  ServiceAccount, PodSecurity …) and no ``ValidatingAdmissionPolicy``. Webhook
  ``matchConditions`` (CEL) are not evaluated (the webhook is called). A
  ``service`` clientConfig needs an entry in ``emu.webhook_services``
  (``(namespace, name)`` → ``https://127.0.0.1:PORT``); TLS still verifies
  ``NAME.NAMESPACE.svc``. A generated name (``generateName``) is already set when
  mutating webhooks see the object. The in-process controllers (garbage
  collector, namespace termination, CRD cleanup) and direct ``Cluster`` calls
  bypass the webhooks; only requests through the HTTP API are admitted. If the
  object changes while a webhook runs, the write starts over (409 if it carried a
  ``resourceVersion``), as the real server's retrying update does. Configurations
  are not validated on create (e.g. the ``https``-only URL rule is checked at call
  time, as a call failure).
* :attr:`kubeemu.cluster.Cluster.admission` is an extra in-process hook (called in
  the mutating phase before the webhooks) for tests that want to inject admission
  logic without a server.
"""
from kubeemu.emulator import Emulator

__all__ = ['Emulator']
