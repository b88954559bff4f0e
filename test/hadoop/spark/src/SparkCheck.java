// Spark (spark-sql, local[2]) reading LiveMR composed files through webhdfs:// for the tests
// (test/hadoop/spark/pom.xml, jars from Maven Central via scripts/build-native-hadoop.sh spark).
//   java SparkCheck URI   prints "LINES <n>", then "<first word>\t<count>" per group, sorted by word
// (lines grouped by their first space-separated word; an empty line's group is "").
import java.util.List;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

public class SparkCheck {
  public static void main(String[] args) {
    SparkSession spark = SparkSession.builder().appName("livemr-check").master("local[2]")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2").getOrCreate();
    try {
      Dataset<String> lines = spark.read().textFile(args[0]);
      System.out.println("LINES " + lines.count());
      Dataset<String> first = lines.map((MapFunction<String, String>) l -> { int i = l.indexOf(' '); return i < 0 ? l : l.substring(0, i); }, Encoders.STRING());
      List<Row> groups = first.groupBy("value").count().orderBy("value").collectAsList();
      for (Row r : groups) System.out.println(r.getString(0) + "\t" + r.getLong(1));
    } finally {
      spark.stop();
    }
  }
}
