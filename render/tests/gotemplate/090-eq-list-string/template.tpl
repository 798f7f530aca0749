{{ eq .list "a" }}
