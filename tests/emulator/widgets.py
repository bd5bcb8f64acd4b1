"""The test CRDs of the fidelity suite: Widget (schema + status subresource) and Gadget."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

WIDGET_CRD: dict[str, Any] = {
    'apiVersion': 'apiextensions.k8s.io/v1',
    'kind': 'CustomResourceDefinition',
    'metadata': {'name': 'widgets.test.kubeemu.dev'},
    'spec': {
        'group': 'test.kubeemu.dev',
        'scope': 'Namespaced',
        'names': {'plural': 'widgets', 'singular': 'widget', 'kind': 'Widget',
                  'shortNames': ['wdg'], 'categories': ['kubeemu-test']},
        'versions': [{
            'name': 'v1', 'served': True, 'storage': True,
            'subresources': {'status': {}},
            'schema': {'openAPIV3Schema': {
                'type': 'object',
                'properties': {
                    'spec': {
                        'type': 'object',
                        'required': ['dataset'],
                        'properties': {
                            'replicas': {'type': 'integer', 'minimum': 1, 'maximum': 10, 'default': 1},
                            'mode': {'type': 'string', 'enum': ['fast', 'slow'], 'default': 'fast'},
                            'dataset': {
                                'type': 'object',
                                'required': ['uri'],
                                'properties': {
                                    'uri': {'type': 'string', 'pattern': '^(sklearn|file|s3|https)://'},
                                    'format': {'type': 'string', 'default': 'csv'},
                                },
                            },
                            'tags': {'type': 'array', 'maxItems': 3, 'items': {'type': 'string', 'minLength': 1}},
                            'extra': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True},
                            'labels': {'type': 'object', 'additionalProperties': {'type': 'string'}},
                            'when': {'type': 'string', 'format': 'date-time'},
                        },
                    },
                    'status': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True},
                },
            }},
        }],
    },
}

# A CRD without the status subresource: status changes count as spec changes there.
GADGET_CRD: dict[str, Any] = {
    'apiVersion': 'apiextensions.k8s.io/v1',
    'kind': 'CustomResourceDefinition',
    'metadata': {'name': 'gadgets.test.kubeemu.dev'},
    'spec': {
        'group': 'test.kubeemu.dev', 'scope': 'Cluster',
        'names': {'plural': 'gadgets', 'kind': 'Gadget'},
        'versions': [{'name': 'v1', 'served': True, 'storage': True, 'schema': {'openAPIV3Schema': {
            'type': 'object', 'x-kubernetes-preserve-unknown-fields': True}}}],
    },
}

WIDGETS = 'test.kubeemu.dev/v1'


WidgetFactory = Callable[..., dict[str, Any]]
