{{/* Names: one install per cluster (the ClusterRoles and webhook configurations are cluster-wide). */}}
{{- define "modelops.name" -}}modelops-operator{{- end -}}

{{- define "modelops.labels" -}}
app.kubernetes.io/name: {{ include "modelops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: modelops
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "modelops.selector" -}}
app.kubernetes.io/name: {{ include "modelops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "modelops.image" -}}{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}

{{- define "modelops.serviceAccountName" -}}{{ .Values.serviceAccount.name | default (include "modelops.name" .) }}{{- end -}}

{{/* The identity the API server authenticates the operator as (admission userInfo.username). */}}
{{- define "modelops.operatorUser" -}}system:serviceaccount:{{ .Release.Namespace }}:{{ include "modelops.serviceAccountName" . }}{{- end -}}

{{- define "modelops.webhookSecret" -}}{{ include "modelops.name" . }}-webhook-tls{{- end -}}
{{- define "modelops.webhookCertDir" -}}/etc/modelops/webhook-certs{{- end -}}
{{- define "modelops.policyFile" -}}/etc/modelops/policy/policy.yaml{{- end -}}

{{/* ruleLabels as k=v,k=v (sorted, so that a render is reproducible). */}}
{{- define "modelops.ruleLabels" -}}
{{- $pairs := list -}}
{{- range $key, $value := .Values.ruleLabels -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/* The governance policy file: the values, with the operator's own identity in operatorUsers and
its own image repository in workloads.images (naming it explicitly is allowed wherever leaving the
image out is). */}}
{{- define "modelops.policy" -}}
{{- $policy := deepCopy .Values.governance -}}
{{- $users := $policy.operatorUsers | default list -}}
{{- $self := include "modelops.operatorUser" . -}}
{{- if not (has $self $users) -}}
{{- $users = append $users $self -}}
{{- end -}}
{{- $_ := set $policy "operatorUsers" $users -}}
{{- $workloads := $policy.workloads | default dict -}}
{{- $images := $workloads.images | default list -}}
{{- $own := .Values.image.repository -}}
{{- $listed := false -}}
{{- range $images -}}{{- if eq .repository $own -}}{{- $listed = true -}}{{- end -}}{{- end -}}
{{- if not $listed -}}
{{- $images = append $images (dict "repository" $own) -}}
{{- end -}}
{{- $_ := set $workloads "images" $images -}}
{{- $_ := set $policy "workloads" $workloads -}}
{{- toYaml $policy -}}
{{- end -}}

{{/* Webhooks only see the watched namespaces in namespaced mode. */}}
{{- define "modelops.webhookNamespaceSelector" -}}
{{- if .Values.watchNamespaces }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: In
      values:
        {{- toYaml .Values.watchNamespaces | nindent 8 }}
{{- end }}
{{- end -}}

{{/* What the webhooks share (docs/governance.md): fail closed, no side effects, a short timeout. */}}
{{- define "modelops.webhookCommon" -}}
failurePolicy: Fail
sideEffects: None
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
admissionReviewVersions: [v1]
matchPolicy: Equivalent
{{- include "modelops.webhookNamespaceSelector" .root }}
clientConfig:
  service:
    name: {{ include "modelops.name" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if .caBundle }}
  caBundle: {{ .caBundle }}
  {{- end }}
{{- end -}}
