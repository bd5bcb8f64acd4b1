"""
kubeemu — an emulated Kubernetes API server for running the real Kopf operator in tests.

Built on kmock 0.8 (``kmock.RawHandler`` + ``kmock.Server``): kmock provides the
HTTP plumbing and request recording; the Kubernetes semantics are implemented
here (:mod:`kubeemu.cluster`, :mod:`kubeemu.server`), because kmock's own
``KubernetesEmulator`` lacks resourceVersions, watch resumption, selectors, the
status split, PUT, apply, finalizers and garbage collection.

Public surface::

    from kubeemu import Emulator                   # emu.start()/stop(), emu.url, write_kubeconfig(),
                                                   # register_crds(), register_builtin_extras(), add_user()
    from kubeemu.client import KubeClient, ApiError
    pytest_plugins = ["kubeemu.fixtures"]          # fixtures: emulator, kube, kubeconfig

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
(Background, Foreground, Orphan), namespace termination, and authentication
(bearer token → user table; no token → ``system:admin`` in ``system:masters``).

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
* Authorization is not enforced: every authenticated user may do everything.

Not built yet (left for the follow-up issue): calling admission webhooks
(Validating/MutatingWebhookConfiguration are stored only) and answering
SubjectAccessReview. :attr:`kubeemu.cluster.Cluster.admission` is the hook where
the webhook caller plugs in: it receives the operation, resource, new and old
object, the request's :class:`~kubeemu.cluster.Identity` (``userInfo``),
subresource and dry-run flag, and may mutate or raise a ``StatusError``.
"""
from kubeemu.emulator import Emulator

__all__ = ['Emulator']
