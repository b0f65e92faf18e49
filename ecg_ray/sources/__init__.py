"""Where inputs come from: http(s) downloads under the URL policy, local paths the settings allow,
S3 reads (``inputs``, ``urls``, ``s3``)."""
