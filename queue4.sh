while kill -0  2>/dev/null; do sleep 5; done
./run-usearch.sh clustered 300000 i8s 16 2 64,128
node us-search.mjs idx/clustered-300000-i8s-M16-ea128.usearch clustered 300000 i8s 16 view 64,128 30 2>&1 | tee logs-search-clustered-300000-i8s-M16-rerank.txt
./run-lance.sh clustered 300000 2
