a: {{ include "bad" . }}
