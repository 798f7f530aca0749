{{ eq .name 1 }}
