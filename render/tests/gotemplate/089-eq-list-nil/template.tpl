{{ eq .list nil }} {{ eq .nope nil }} {{ eq nil nil }} {{ eq .nope .nothing }}
