// Runs many FsShell commands in one JVM (JVM start-up dominates on a small machine).
// stdin: one command per line, arguments separated by TAB (e.g. "-ls\t-R\twebhdfs://h:p/");
// a command may start with -Dkey=value generic options that apply to it alone. Two more commands
// use the FileSystem API directly:
//   @pread URI OFFSET LENGTH   positioned read (readFully) of LENGTH bytes at OFFSET
//   @blocks URI                getFileBlockLocations over the whole file: "offset length hosts names" lines
//   @oldblocks URI             the same through GET_BLOCK_LOCATIONS, the op clients before 3.4 use
//   @null FSSHELL-ARGS...      runs the FsShell command with its stdout discarded; prints the elapsed ms
// stdout: one line per command: "<exit code>\t<base64 stdout>\t<base64 stderr>".
// Configuration comes from -Dkey=value arguments of this program (generic options).

import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Base64;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.BlockLocation;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.FsShell;
import org.apache.hadoop.fs.Path;
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
        Configuration c = new Configuration(conf);
        if (args[0].equals("@pread")) rc = pread(c, args);
        else if (args[0].equals("@blocks")) rc = blocks(c, args);
        else if (args[0].equals("@oldblocks")) rc = oldBlocks(c, args);
        else if (args[0].equals("@null")) {
          PrintStream captured = System.out;
          System.setOut(new PrintStream(java.io.OutputStream.nullOutputStream()));
          long t0 = System.nanoTime();
          try {
            rc = ToolRunner.run(c, new FsShell(), java.util.Arrays.copyOfRange(args, 1, args.length));
          } finally {
            System.setOut(captured);
          }
          System.out.print((System.nanoTime() - t0) / 1_000_000);
        }
        else rc = ToolRunner.run(c, new FsShell(), args);
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

  static int pread(Configuration conf, String[] a) throws Exception {
    Path p = new Path(a[1]);
    byte[] buf = new byte[Integer.parseInt(a[3])];
    try (FSDataInputStream in = p.getFileSystem(conf).open(p)) {
      in.readFully(Long.parseLong(a[2]), buf);
    }
    System.out.write(buf);
    return 0;
  }

  static int blocks(Configuration conf, String[] a) throws Exception {
    Path p = new Path(a[1]);
    FileSystem fs = p.getFileSystem(conf);
    FileStatus st = fs.getFileStatus(p);
    for (BlockLocation b : fs.getFileBlockLocations(st, 0, st.getLen())) {
      System.out.println(b.getOffset() + " " + b.getLength() + " " + String.join(",", b.getHosts()) + " " + String.join(",", b.getNames()));
    }
    return 0;
  }

  /** WebHdfsFileSystem's own GET_BLOCK_LOCATIONS path (private: reached by reflection). */
  static int oldBlocks(Configuration conf, String[] a) throws Exception {
    Path p = new Path(a[1]);
    FileSystem fs = p.getFileSystem(conf);
    FileStatus st = fs.getFileStatus(p);
    java.lang.reflect.Method m = org.apache.hadoop.hdfs.web.WebHdfsFileSystem.class.getDeclaredMethod(
        "getFileBlockLocations", org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.class, Path.class, long.class, long.class);
    m.setAccessible(true);
    BlockLocation[] bs = (BlockLocation[]) m.invoke(fs, org.apache.hadoop.hdfs.web.resources.GetOpParam.Op.GET_BLOCK_LOCATIONS, p, 0L, st.getLen());
    for (BlockLocation b : bs) {
      System.out.println(b.getOffset() + " " + b.getLength() + " " + String.join(",", b.getHosts()) + " " + String.join(",", b.getNames()));
    }
    return 0;
  }
}
