// Runs many FsShell commands in one JVM (JVM start-up dominates on a small machine).
// stdin: one command per line, arguments separated by TAB (e.g. "-ls\t-R\twebhdfs://h:p/").
// stdout: one line per command: "<exit code>\t<base64 stdout>\t<base64 stderr>".
// Configuration comes from -Dkey=value arguments of this program (generic options).

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FsShell;
import org.apache.hadoop.util.GenericOptionsParser;
import org.apache.hadoop.util.ToolRunner;

public class FsShellBatch {
  public static void main(String[] argv) throws Exception {
    Configuration conf = new Configuration();
    new GenericOptionsParser(conf, argv);
    PrintStream realOut = System.out;
    PrintStream realErr = System.err;
    BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
    Base64.Encoder b64 = Base64.getEncoder();
    for (String line; (line = in.readLine()) != null; ) {
      if (line.isEmpty()) continue;
      String[] args = line.split("\t", -1);
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      ByteArrayOutputStream err = new ByteArrayOutputStream();
      int rc;
      System.setOut(new PrintStream(out, true));
      System.setErr(new PrintStream(err, true));
      try {
        rc = ToolRunner.run(conf, new FsShell(), args);
      } catch (Throwable t) {
        t.printStackTrace(System.err);
        rc = 255;
      } finally {
        System.out.flush();
        System.err.flush();
        System.setOut(realOut);
        System.setErr(realErr);
      }
      realOut.println(rc + "\t" + b64.encodeToString(out.toByteArray()) + "\t" + b64.encodeToString(err.toByteArray()));
      realOut.flush();
    }
  }
}
