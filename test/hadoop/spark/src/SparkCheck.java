// Spark (spark-sql, local[2]) reading LiveMR composed files through webhdfs:// for the tests
// (test/hadoop/spark/pom.xml, jars from Maven Central via scripts/build-native-hadoop.sh spark).
// One SparkSession serves commands read from stdin, one per line, each answered with one line
// "LIVEMR-OK <summary>" or "LIVEMR-ERR <message>" on stdout ("LIVEMR-READY" once the session is up);
// Spark's own logging goes to stderr. Every command is a new read: the file is listed again.
//   groups URI OUT   OUT: "LINES <n>", then "<first word>\t<count>" per group, sorted by word
//                    (lines grouped by their first space-separated word; an empty line's group is "")
//   scan URI OUT     one pass checking each line against the live-test format (expected(seq) below);
//                    OUT: "<lines> <bad> <maxSeq> <seqSum>" then up to 5 bad lines
//   collect URI OUT  OUT: the lines in file order joined by "\n" (no trailing newline)
// A command may end with key=value SQL settings (e.g. spark.sql.files.maxPartitionBytes=16384), set
// for the session before it runs.
// The live-test format: line seq is expected(seq) (test/integration/hdfs-spark.test.ts has the same
// function and the guest's shell writer the same arithmetic), so any wrong byte makes a line bad.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import org.apache.spark.api.java.function.MapFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;

public class SparkCheck {
  /** Line seq of the live test: "%08d %08x %0{w}x" of seq, a 32-bit mix h of seq, and h ^ 0xAAAAAAAA. */
  static String expected(long seq) {
    long h = (seq * 2654435761L + 40503L) & 0xffffffffL;
    h ^= h >>> 15;
    h = (h * 739982445L) & 0xffffffffL;
    h ^= h >>> 13;
    int w = 8 + (int) (h & 31);
    return String.format("%08d %08x %0" + w + "x", seq, h, h ^ 0xAAAAAAAAL);
  }

  static final class Scan implements Serializable {
    long lines;
    long bad;
    long maxSeq = -1;
    long seqSum;
    ArrayList<String> badLines = new ArrayList<>();
  }

  static Scan add(Scan s, String l) {
    s.lines++;
    long seq = -1;
    if (l.length() > 8 && l.charAt(8) == ' ') {
      try { seq = Long.parseLong(l.substring(0, 8)); } catch (NumberFormatException e) { seq = -1; }
    }
    if (seq >= 0 && l.equals(expected(seq))) {
      s.maxSeq = Math.max(s.maxSeq, seq);
      s.seqSum += seq;
    } else {
      s.bad++;
      if (s.badLines.size() < 5) s.badLines.add(l);
    }
    return s;
  }

  static Scan merge(Scan a, Scan b) {
    a.lines += b.lines;
    a.bad += b.bad;
    a.maxSeq = Math.max(a.maxSeq, b.maxSeq);
    a.seqSum += b.seqSum;
    for (String l : b.badLines) if (a.badLines.size() < 5) a.badLines.add(l);
    return a;
  }

  static String run(SparkSession spark, String cmd, String uri, String out) throws Exception {
    Dataset<String> lines = spark.read().textFile(uri);
    switch (cmd) {
      case "groups": {
        long n = lines.count();
        Dataset<String> first = lines.map((MapFunction<String, String>) l -> { int i = l.indexOf(' '); return i < 0 ? l : l.substring(0, i); }, Encoders.STRING());
        StringBuilder b = new StringBuilder("LINES " + n + "\n");
        for (Row r : first.groupBy("value").count().orderBy("value").collectAsList()) b.append(r.getString(0)).append('\t').append(r.getLong(1)).append('\n');
        Files.write(Paths.get(out), b.toString().getBytes(StandardCharsets.UTF_8));
        return "LINES " + n;
      }
      case "scan": {
        Scan s = lines.javaRDD().aggregate(new Scan(), SparkCheck::add, SparkCheck::merge);
        StringBuilder b = new StringBuilder(s.lines + " " + s.bad + " " + s.maxSeq + " " + s.seqSum + "\n");
        for (String l : s.badLines) b.append(l).append('\n');
        Files.write(Paths.get(out), b.toString().getBytes(StandardCharsets.UTF_8));
        return s.lines + " lines, " + s.bad + " bad, " + lines.rdd().getNumPartitions() + " partitions";
      }
      case "collect": {
        List<String> all = lines.collectAsList();
        Files.write(Paths.get(out), String.join("\n", all).getBytes(StandardCharsets.UTF_8));
        return all.size() + " lines";
      }
      default:
        throw new IllegalArgumentException("unknown command " + cmd);
    }
  }

  public static void main(String[] args) throws Exception {
    SparkSession.Builder b = SparkSession.builder().appName("livemr-check").master("local[2]")
        .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "2");
    // extra settings as key=value arguments (e.g. small file partitions)
    for (String a : args) { int eq = a.indexOf('='); b = b.config(a.substring(0, eq), a.substring(eq + 1)); }
    SparkSession spark = b.getOrCreate();
    try {
      BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
      System.out.println("LIVEMR-READY");
      System.out.flush();
      for (String line; (line = in.readLine()) != null; ) {
        String[] a = line.split(" ");
        String reply;
        try {
          if (a.length < 3) throw new IllegalArgumentException("usage: CMD URI OUT [key=value ...]");
          for (int i = 3; i < a.length; i++) { int eq = a[i].indexOf('='); spark.conf().set(a[i].substring(0, eq), a[i].substring(eq + 1)); }
          reply = "LIVEMR-OK " + run(spark, a[0], a[1], a[2]);
        } catch (Exception e) {
          reply = "LIVEMR-ERR " + String.valueOf(e).replace('\n', ' ');
          e.printStackTrace();
        }
        System.out.println(reply);
        System.out.flush();
      }
    } finally {
      spark.stop();
    }
  }
}
