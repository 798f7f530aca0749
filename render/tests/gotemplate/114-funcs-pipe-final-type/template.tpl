{{ 3 | printf "%d" | upper }} {{ "x" | repeat 2 }}
