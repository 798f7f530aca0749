{{ `raw\n {{ x }}` }} {{ "esc\t\u00e9\x41" }} {{ printf "%q" "tab\there\n" }}
