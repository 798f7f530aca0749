{{ upper .name }} {{ .name | upper }} {{ repeat 3 "ab" }} {{ fail "" }} {{ identity .labels }} [{{ identity .nope }}]
{{ join "," 1 "a" .ratio }} {{ join "-" }} {{ half .replicas }} {{ half 3.0 }} {{ yesno true }} {{ .enabled | yesno }}
{{ (identity .image).repository }} {{ upper (identity .name) }} {{ repeat 2 (upper "x") }}
