a
  {{ fail "boom" }}
