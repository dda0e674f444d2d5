"""The Kubernetes renderer: the platform model turned into plain Kubernetes objects.

Every object is a dict with the API's camelCase keys, in a deterministic order. ``otelstack plan`` exports
them to ``build/ENV/k8s/`` and validates them; the Pulumi program (``stacks/``) only maps them onto
``pulumi_kubernetes`` resources, so the plan's export and the stack create the same objects.

- :mod:`.objects`: ``K8sObject``, ``Component`` and the helpers every builder shares;
- :mod:`.settings`: ``ClusterSettings`` and the stack file loader (``stacks/platform/Pulumi.<stack>.yaml``);
- :mod:`.stack`: ``render_stack`` (one builder per module, in dependency order) and the YAML export.
"""
