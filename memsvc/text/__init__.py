"""Language tools shared by the write and read paths: time expressions, stopwords."""
