{{ index .labels "app" "x" }}
